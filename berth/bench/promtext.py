"""A berth server's ``GET /metrics`` read by the lab: samples, their change over a window,
and percentiles from a histogram's bucket counts.

A percentile read from buckets is known only to its bucket: :func:`quantile`
answers the upper bound of the bucket the rank falls in (the value is at
most that, and above the bound below it), and None when it falls beyond the
last finite bound.
"""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus exposition text."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return found


def scrape(url: str, timeout: float = 30.0) -> Samples:
    """The samples ``url``/metrics serves (every worker of the server, summed)."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as answer:
        return parse(answer.read().decode("utf-8"))


def delta(before: Samples, after: Samples) -> Samples:
    """How much each sample of ``after`` grew since ``before`` (counters and histograms)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= set(pairs))


def by_label(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    """The samples named ``name`` (with ``labels``) summed per value of ``label``."""
    wanted = set(labels.items())
    found: dict[str, float] = {}
    for (n, pairs), value in samples.items():
        values = dict(pairs)
        if n == name and wanted <= set(pairs) and label in values:
            found[values[label]] = found.get(values[label], 0.0) + value
    return found


def buckets(samples: Samples, histogram: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram, bounds ascending (+Inf last), summed
    over its label sets."""
    per_bound = by_label(samples, f"{histogram}_bucket", "le")
    return sorted((float(le), count) for le, count in per_bound.items())


def quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (0 < q <= 1) of the counts
    in ``cumulative`` (:func:`buckets`); None when it lies beyond the last finite bound or
    there is nothing counted."""
    count = cumulative[-1][1] if cumulative else 0.0
    if count <= 0:
        return None
    rank = q * count
    for bound, seen in cumulative:
        if seen >= rank:
            return None if math.isinf(bound) else bound
    return None


def histogram_summary(samples: Samples, histogram: str) -> dict[str, float | int | None]:
    """Count, mean, p50 and p99 (bucket upper bounds) of a histogram's samples."""
    count = round(total(samples, f"{histogram}_count"))
    summed = total(samples, f"{histogram}_sum")
    cumulative = buckets(samples, histogram)
    return {
        "count": count,
        "mean": round(summed / count, 4) if count else None,
        "p50": quantile(cumulative, 0.50),
        "p99": quantile(cumulative, 0.99),
    }
