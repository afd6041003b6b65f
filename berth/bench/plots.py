"""PNG plots of the report (matplotlib, Agg backend: no display needed).

matplotlib is optional (the ``bench`` extra, ``pip install 'berth[bench]'``):
it is imported only when a plot is drawn, and without it :func:`draw_all`
raises :class:`PlotsUnavailable` saying how to install it.

Five pictures: candidates p50 against hosts (per target), claims/s
against hosts (per target, mode, strategy, partitioning and clients),
placements/s of push and pull filling the cloud (``berth bench pull``), and
the seed's question, filtering in the database vs in Python vs in memory
(berth's three modes; and the seed's own figures beside them, on its
cloud).  Each series is the median over repeated runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from berth.bench.seed import SEED_FILTERING
from berth.bench.summary import Line, changed_settings, db_kind, group, median_of, target_label

Series = dict[str, list[tuple[float, float]]]
MISSING = "the plots need matplotlib, which is not installed: pip install 'berth[bench]'"


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def available() -> bool:
    """Whether matplotlib is installed (the ``bench`` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported here: it is optional)."""
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(MISSING) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def series(lines: list[Line], kind: str, label: Callable[[Line], str | None], field: str) -> Series:
    """label -> sorted (hosts, median field) points; lines whose label is None are skipped."""
    out: Series = {}
    keyed = group(
        (x for x in lines if x["kind"] == kind),
        lambda x: (label(x), x["settings"].get("hosts")),
    )
    for (name, hosts), same in keyed.items():
        if name is None or not hosts:
            continue
        out.setdefault(name, []).append((float(hosts), median_of(same, field)))
    return {name: sorted(points) for name, points in out.items()}


def _draw(data: Series, title: str, ylabel: str, path: Path, log_y: bool = False) -> bool:
    """One plot of ``data`` into ``path``; False when there is nothing to draw."""
    if not data:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    colours = plt.get_cmap("tab10" if len(data) <= 10 else "tab20")
    for i, (name, points) in enumerate(sorted(data.items())):
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, marker="o", label=name, color=colours(i), linestyle=_style(name))
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("compute hosts")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def _style(name: str) -> str:
    """The reference dashed, berth over HTTP dotted, berth in process solid."""
    if name.startswith("reference"):
        return "--"
    return ":" if "HTTP" in name else "-"


def _several(data: Series) -> Series:
    """Only the series with more than one point (a lone point is in the tables)."""
    return {name: points for name, points in data.items() if len(points) > 1}


def flat(x: Line) -> bool:
    """Whether the line's cloud is one provider per host (no NUMA children or pools)."""
    s = x["settings"]
    return s.get("providers") in (None, s.get("hosts"))


def _candidates_label(query: str) -> Callable[[Line], str | None]:
    """Label candidates lines of ``query`` at c=1 on a flat cloud; None for the others."""

    def label(x: Line) -> str | None:
        """The series the line belongs to, or None."""
        s = x["settings"]
        if s.get("query") != query or s.get("concurrency") != 1 or not flat(x):
            return None
        berth = x["target"] in ("inproc", "serve")
        return target_label(x) + (f" [{s.get('filter')}]" if berth else "")

    return label


def _claims_label(x: Line) -> str:
    """Target, mode, strategy/partitioning and clients of a claims line (* settings changed)."""
    s = x["settings"]
    tuned = "*" if changed_settings(x) else ""
    return (f"{target_label(x)} {s.get('mode', '')} {s.get('strategy')}/{s.get('partitioning')} "
            f"W={s.get('workers')}x{s.get('concurrency', 1)}{tuned}")  # fmt: skip


def _pull_label(x: Line) -> str:
    """The design (pull: and its projects) and the database of a ``berth bench pull`` line."""
    s = x["settings"]
    batch = f", batch {s['batch']}" if s.get("batch", 1) != 1 else ""
    design = "push" if s.get("design") == "push" else f"pull, {s.get('projects')} project(s)"
    design += batch
    return f"{design} ({db_kind(x)})"


FILTERS = {"sql": "in the database (sql)", "python": "in Python (python)", "memory": "in memory"}


def _filter_label(query: str) -> Callable[[Line], str | None]:
    """berth's filter mode of a c=1 candidates line of ``query``; None for the others."""

    def label(x: Line) -> str | None:
        """The series the line belongs to, or None."""
        s = x["settings"]
        if x["target"] not in ("inproc", "serve") or s.get("concurrency") != 1 or not flat(x):
            return None
        if s.get("query") != query:
            return None
        return FILTERS.get(s.get("filter", ""))

    return label


def seed_series(lines: list[Line]) -> Series:
    """berth's three modes on the seed's query (mean ms), and the seed's own (2016) figures."""
    data = series(lines, "candidates", _filter_label("seed"), "mean_ms")
    if data:
        data["seed 2016: DB"] = [(float(n), v[0] * 1000) for n, v in SEED_FILTERING.items()]
        data["seed 2016: Python"] = [(float(n), v[1] * 1000) for n, v in SEED_FILTERING.items()]
    return data


# (title, kind, label, result field, y label, file); all with log-log axes.
PLOTS: list[tuple[str, str, Callable[[Line], str | None], str, str, str]] = [
    ("candidates p50, limit=50, c=1", "candidates", _candidates_label("limit"), "p50_ms",
     "p50 ms", "candidates-limit.png"),
    ("candidates p50, no limit, c=1", "candidates", _candidates_label("nolimit"), "p50_ms",
     "p50 ms", "candidates-nolimit.png"),
    ("successful claims/s", "claims", _claims_label, "claims_per_s", "claims/s", "claims.png"),
    ("pull against push: placements/s filling the cloud", "pull", _pull_label, "placed_per_s",
     "placements/s", "pull.png"),
    ("filtering in the database, in Python, in memory (berth, limit=50)", "candidates",
     _filter_label("limit"), "p50_ms", "p50 ms", "filtering.png"),
]  # fmt: skip
SEED_PLOT = ("select a destination: the seed (2016) and berth's three modes, its cloud",
             "mean ms", "seed-filtering.png")  # fmt: skip


def draw_all(lines: list[Line], directory: Path) -> list[tuple[str, Path]]:
    """Draw every plot the lines allow; (title, file) of each drawn.

    Raises :class:`PlotsUnavailable` without matplotlib, whatever the lines.
    """
    if not available():
        raise PlotsUnavailable(MISSING)
    drawn = []
    for title, kind, label, field, ylabel, name in PLOTS:
        data = series(lines, kind, label, field)
        if kind == "claims":
            data = _several(data)
        if _draw(data, title, ylabel, directory / name, log_y=True):
            drawn.append((title, directory / name))
    title, ylabel, name = SEED_PLOT
    if _draw(seed_series(lines), title, ylabel, directory / name, log_y=True):
        drawn.append((title, directory / name))
    return drawn
