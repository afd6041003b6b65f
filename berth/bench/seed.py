"""The published figures berth's design comes from, next to this machine's.

Two tables of the 2016 design discussions (select time with filtering in
the database vs in Python; claims/s of 8 schedulers with and without
partitioning) and the reference's figures measured on a 2-core machine,
each beside the medians of the result lines for the same host counts.
"""

from __future__ import annotations

from collections.abc import Callable

from berth.bench.summary import Line, group, median_of, table

# hosts -> average seconds to select a destination: (DB filtering, Python filtering)
SEED_FILTERING: dict[int, tuple[float, float]] = {
    100: (0.021035, 0.022517),
    200: (0.023370, 0.026526),
    400: (0.027638, 0.034666),
    800: (0.034814, 0.048271),
}
# hosts -> successful claims/s, 8 schedulers, pack-first: (no partitioning, modulo)
SEED_CLAIMS: dict[int, tuple[float, float]] = {
    100: (54.1, 97.1),
    200: (68.9, 124.5),
    400: (51.3, 115.1),
    800: (34.3, 89.4),
}
# The reference (Placement 16.0.0, 2 workers, PostgreSQL) as published for a 2-core machine:
# hosts -> (p50 ms limit=50, p50 ms no limit, claims/s none, claims/s modulo)
REFERENCE_PUBLISHED: dict[int, tuple[float, float, float, float]] = {
    100: (43, 38, 15.9, 15.3),
    800: (132, 168, 8.3, 8.8),
    5000: (692, 1056, 2.7, 3.0),
    20000: (3109, 3708, 0.4, 0.3),
}


def _lookup(
    lines: list[Line], kind: str, match: Callable[[Line], bool], field: str
) -> dict[int, float]:
    """hosts -> median ``field`` over the lines of ``kind`` that ``match``."""
    chosen = [x for x in lines if x["kind"] == kind and match(x)]
    by_hosts = group(chosen, lambda x: (x["settings"].get("hosts"),))
    return {int(k[0]): median_of(v, field) for k, v in by_hosts.items() if k[0]}


def _cands(target: str, query: str, filt: str | None) -> Callable[[Line], bool]:
    """Matches the flat-cloud, c=1, one-worker candidates lines of one target, query, filter."""

    def match(x: Line) -> bool:
        """Whether ``x`` is such a line."""
        s = x["settings"]
        ok = x["target"] == target and s.get("query") == query and s.get("concurrency") == 1
        flat = s.get("providers") in (None, s.get("hosts"))  # no NUMA children or pools
        one_worker = target != "serve" or s.get("server_workers", 1) == 1
        return ok and flat and one_worker and (filt is None or s.get("filter") == filt)

    return match


def seed_filtering_table(lines: list[Line]) -> str:
    """The seed's select time (DB / Python) beside berth's three filter modes, same cloud.

    The ``seed`` query (placement-bench's medium, one destination) on
    placement-bench's cloud, one berth worker, one request at a time: p50
    and mean in ms; the seed's figures are means.
    """
    modes = ("sql", "python", "memory")
    p50 = [_lookup(lines, "candidates", _cands("serve", "seed", m), "p50_ms") for m in modes]
    mean = [_lookup(lines, "candidates", _cands("serve", "seed", m), "mean_ms") for m in modes]
    reference = _lookup(lines, "candidates", _cands("reference", "seed", None), "mean_ms")
    hosts = sorted(set(SEED_FILTERING).union(*p50, reference))
    rows = []
    for n in hosts:
        seed = [f"{s * 1000:.1f}" for s in SEED_FILTERING.get(n, ())] or ["", ""]
        berth = [
            f"{_cell(a, n)} / {_cell(b, n)}".strip(" /") for a, b in zip(p50, mean, strict=True)
        ]
        rows.append([f"{n:,}", *seed, *berth, _cell(reference, n)])
    head = ["hosts", "seed: DB, mean (2016)", "seed: Python, mean (2016)",
            "berth sql: p50 / mean", "berth python: p50 / mean", "berth memory: p50 / mean",
            "reference: mean"]  # fmt: skip
    return table(head, rows)


def _cell(values: dict[int, float], hosts: int, scale: float = 1.0) -> str:
    """The value for ``hosts``, formatted; empty when not measured."""
    value = values.get(hosts)
    return "" if value is None else f"{value * scale:,.1f}"


def filtering_table(lines: list[Line]) -> str:
    """Seed select time (DB / Python) beside berth SQL / memory and the reference, p50 ms."""
    columns = [
        _lookup(lines, "candidates", _cands(target, query, filt), "p50_ms")
        for query in ("limit", "nolimit")
        for target, filt in (("serve", "sql"), ("serve", "python"), ("serve", "memory"),
                             ("reference", None))
    ]  # fmt: skip
    hosts = sorted(set(SEED_FILTERING).union(*columns))
    rows = []
    for n in hosts:
        seed = [f"{s * 1000:.1f}" for s in SEED_FILTERING.get(n, ())] or ["", ""]
        rows.append([f"{n:,}", *seed, *(_cell(c, n) for c in columns)])
    head = ["hosts", "seed: DB (2016)", "seed: Python (2016)", "berth SQL, limit=50",
            "berth Python, limit=50", "berth memory, limit=50", "reference, limit=50",
            "berth SQL, all", "berth Python, all", "berth memory, all",
            "reference, all"]  # fmt: skip
    return table(head, rows)


def _claims(target: str, partitioning: str) -> Callable[[Line], bool]:
    """Matches the seed-like claims lines (8 schedulers, pack, one request at a time).

    berth claims in its scheduler (as the seed's schedulers did), the
    reference through the lab's Placement client.
    """
    mode = "placement" if target == "reference" else "scheduler"

    def match(x: Line) -> bool:
        """Whether ``x`` is such a line."""
        s = x["settings"]
        return bool(
            x["target"] == target
            and s.get("mode", mode) == mode
            and s.get("partitioning") == partitioning
            and s.get("strategy") == "pack"
            and s.get("workers") == 8
            and s.get("concurrency", 1) == 1  # as the seed: one request at a time each
        )

    return match


def claims_table(lines: list[Line]) -> str:
    """Seed claims/s beside berth's scheduler and the reference, 8 schedulers, pack-first."""
    columns = [
        _lookup(lines, "claims", _claims(target, part), "claims_per_s")
        for target in ("inproc", "serve", "reference")
        for part in ("none", "modulo")
    ]
    hosts = sorted(set(SEED_CLAIMS).union(*columns))
    rows = []
    for n in hosts:
        seed = SEED_CLAIMS.get(n)
        published = REFERENCE_PUBLISHED.get(n)
        rows.append(
            [f"{n:,}", *(f"{v}" for v in seed or ("", "")), *(_cell(c, n) for c in columns),
             *(f"{v}" for v in (published[2:] if published else ("", "")))]
        )  # fmt: skip
    head = ["hosts", "seed: none (2016)", "seed: modulo (2016)", "berth in process: none",
            "berth in process: modulo", "berth HTTP: none", "berth HTTP: modulo",
            "reference: none", "reference: modulo", "reference published: none",
            "reference published: modulo"]  # fmt: skip
    return table(head, rows)
