"""Result lines summarised: repeats grouped, medians of their figures, target labels, tables.

What the report's tables, the seed's tables and the plots all read the
lines with.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Line = dict[str, Any]
Key = tuple[Any, ...]

TARGET_LABELS = {"inproc": "berth (in process)", "serve": "berth (HTTP)", "reference": "reference"}


def target_label(line: Line) -> str:
    """A short, stable name for the line's target."""
    name = str(line["target"])
    return TARGET_LABELS.get(name, name)


def median_of(lines: Sequence[Line], field: str) -> float:
    """The median of a numeric result field over repeated lines."""
    values = [float(x["result"].get(field, 0.0)) for x in lines]
    return statistics.median(values) if values else 0.0


def group(lines: Iterable[Line], key: Callable[[Line], Key]) -> dict[Key, list[Line]]:
    """Lines by ``key``, keys in first-seen order."""
    out: dict[Key, list[Line]] = {}
    for line in lines:
        out.setdefault(key(line), []).append(line)
    return out


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table."""

    def fmt(v: Any) -> str:
        """A cell: numbers with thousands separators."""
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def settings_label(overrides: dict[str, Any]) -> str:
    """Scheduler settings a run changed, short (``index_refresh_ms=1000 scan_limit=10``)."""
    return " ".join(f"{k.removeprefix('scheduler_')}={v}" for k, v in sorted(overrides.items()))


def settings_title(changed: dict[str, Any]) -> str:
    """``[name=value ...]`` of the berth settings a run changed, for a title ("": none)."""
    if not changed:
        return ""
    return "[" + " ".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"


_MISSING = object()
# Kinds whose lines carry a strategy and partitioning that imply scheduler settings.
_SCHEDULED = ("claims", "fill", "compute-claims")


def changed_settings(line: Line, shown: tuple[str, ...] = ()) -> dict[str, Any]:
    """The berth settings a run changed, beyond what its strategy and partitioning imply.

    From the line's ``conditions`` (every non-default setting of the server,
    or of berth in process); older lines only know their ``--set`` overrides.
    ``shown`` names settings a table shows in a column of their own.
    """
    from berth.bench import strategies  # the scheduler's settings per strategy

    s = line["settings"]
    conditions = line.get("conditions")
    changed = (
        dict(conditions.get("settings") or {}) if conditions else dict(s.get("overrides") or {})
    )
    # berth bench pull's push runs schedule with the strategy's settings, unpartitioned.
    pushed = line["kind"] == "pull" and s.get("design") == "push"
    if (line["kind"] in _SCHEDULED and s.get("mode") == "scheduler") or pushed:
        try:
            implied = strategies.scheduler_settings(
                s.get("strategy", ""), s.get("partitioning", "none"), 0, int(s.get("workers", 1))
            )
        except ValueError:
            implied = {}
        changed = {k: v for k, v in changed.items() if implied.get(k, _MISSING) != v}
    return {k: v for k, v in changed.items() if k not in shown}


def db_kind(line: Line) -> str:
    """The database kind behind the line's target ("" when not known)."""
    conditions = line.get("conditions") or {}
    target = line["settings"].get("target")
    return str(conditions.get("db") or (target.get("db") if isinstance(target, dict) else "") or "")


def server_of(line: Line) -> str:
    """``granian x2``, ``gunicorn x2`` (the reference), ``in process`` or ""."""
    conditions = line.get("conditions") or {}
    if conditions.get("kind") == "berth-inproc" or line["target"] == "inproc":
        return "in process"
    server = conditions.get("server") or line["settings"].get("server", "")
    workers = conditions.get("server_workers") or line["settings"].get("server_workers", "")
    return f"{server} x{workers}".strip() if server or workers else ""


def of_kind(lines: list[Line], kind: str) -> list[Line]:
    """The lines of one kind of measurement."""
    return [x for x in lines if x["kind"] == kind]


def load_of(lines: Sequence[Line]) -> str:
    """The 1-minute load average during the runs: one value, or low-high."""
    loads = sorted(float(x["machine"]["loadavg"][0]) for x in lines)
    if not loads:
        return ""
    low, high = loads[0], loads[-1]
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}-{high:.1f}"


def by_settings(lines: Iterable[Line], shown: tuple[str, ...] = ()) -> dict[str, list[Line]]:
    """Lines grouped under the settings their runs changed ("" for berth's defaults)."""
    return {
        k[0]: v
        for k, v in group(lines, lambda x: (settings_title(changed_settings(x, shown)),)).items()
    }


def sectioned(
    lines: list[Line], make: Callable[[list[Line]], str], shown: tuple[str, ...] = ()
) -> str:
    """One table per group of changed settings, each titled with them."""
    parts = []
    for label, same in by_settings(lines, shown).items():
        heading = f"settings changed: {label.strip('[]')}" if label else "default settings"
        parts += [f"**{heading}**", "", make(same), ""]
    return "\n".join(parts).rstrip("\n")
