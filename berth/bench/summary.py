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
