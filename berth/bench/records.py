"""Result lines: every measurement as one JSON object appended to a ``.jsonl`` file.

A line carries what is needed to compare it with another machine's:
``kind`` (the subcommand), ``target``, ``settings`` (the workload),
``result`` (the numbers), ``conditions`` (the server kind, its workers, the
database kind and berth's settings where they differ from the defaults),
``machine`` (cores, memory, python, load average) and ``versions`` (berth
and the libraries that matter).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_PACKAGES = ("berth", "sqlalchemy", "falcon", "gunicorn", "granian", "psycopg", "pymysql")


def machine() -> dict[str, Any]:
    """Cores, memory, python and the load average right now."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_mb = pages // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        memory_mb = 0
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count() or 1,
        "memory_mb": memory_mb,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg": [round(x, 2) for x in load],
    }


def versions() -> dict[str, str]:
    """Installed versions of berth and the libraries it runs on."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def record(
    kind: str,
    target: str,
    settings: dict[str, Any],
    result: dict[str, Any],
    conditions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One result line (not yet written)."""
    line = {
        "kind": kind,
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "target": target,
        "settings": settings,
        "result": result,
        "machine": machine(),
        "versions": versions(),
    }
    if conditions is not None:
        line["conditions"] = conditions
    return line


def append(path: str | Path | None, line: dict[str, Any]) -> None:
    """Append ``line`` to ``path`` (nothing when no path was given)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True) + "\n")


def load(
    paths: Iterable[str | Path],
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Every result line of the files (blank and broken lines skipped).

    ``since`` / ``until`` keep only the lines measured at or after the one and
    before the other (their ``at``).
    """
    lines: list[dict[str, Any]] = []
    for path in paths:
        for text in Path(path).read_text(encoding="utf-8").splitlines():
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "kind" in value and _within(value, since, until):
                lines.append(value)
    return lines


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by the nearest-rank method (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max of latencies given in seconds, in milliseconds."""
    if not seconds:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "max_ms": 0.0}
    return {
        "p50_ms": round(1000 * percentile(seconds, 50), 3),
        "p90_ms": round(1000 * percentile(seconds, 90), 3),
        "p99_ms": round(1000 * percentile(seconds, 99), 3),
        "mean_ms": round(1000 * statistics.fmean(seconds), 3),
        "max_ms": round(1000 * max(seconds), 3),
    }


def _within(
    line: dict[str, Any], since: datetime.datetime | None, until: datetime.datetime | None
) -> bool:
    """Whether ``line`` was measured in [``since``, ``until``) (always, without either)."""
    if since is None and until is None:
        return True
    try:
        at = datetime.datetime.fromisoformat(str(line.get("at")))
        return (since is None or at >= since) and (until is None or at < until)
    except (ValueError, TypeError):  # no time, or one without a zone
        return False
