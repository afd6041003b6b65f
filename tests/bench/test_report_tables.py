"""The report's conditions, settings sections, fill and storm tables, and the issue's targets."""

from __future__ import annotations

from typing import Any

from berth.bench import report, report_tables, seed
from berth.bench.summary import changed_settings, load_of, server_of

from .test_report import _line, _row


def _conditioned(
    kind: str, settings: dict[str, Any], result: dict[str, Any], changed: dict[str, Any],
    db: str = "postgresql", load: float = 1.0, target: str = "serve",
) -> dict[str, Any]:  # fmt: skip
    line = _line(kind, target, settings, result, load)
    line["conditions"] = {"target": target, "kind": "berth-http", "db": db, "server": "granian",
                          "server_workers": 2, "settings": changed}  # fmt: skip
    return line


CLAIMED = {"claims_per_s": 1200.0, "conflicts_per_s": 1.0, "conflict_pct": 0.4, "retries": 3,
           "give_ups": 0, "server_errors": 0, "p50_ms": 20.0, "p99_ms": 150.0,
           "over_capacity": 0}  # fmt: skip


def _select(changed: dict[str, Any], rate: float = 1200.0, db: str = "postgresql") -> dict:
    settings = {"hosts": 10000, "mode": "scheduler", "strategy": "default",
                "partitioning": "none", "workers": 4, "concurrency": 8}  # fmt: skip
    return _conditioned("claims", settings, {**CLAIMED, "claims_per_s": rate}, changed, db)


def test_pack_weighers_are_the_strategys_not_a_changed_setting() -> None:
    settings = {"mode": "scheduler", "strategy": "pack", "partitioning": "none", "workers": 8}
    line = _conditioned(
        "claims",
        settings,
        CLAIMED,
        {"scheduler_weighers": "ram=-1,cpu=-1", "scheduler_scan_limit": 10},
    )
    assert changed_settings(line) == {"scheduler_scan_limit": 10}


def test_tuned_runs_are_tabled_apart_under_their_settings() -> None:
    lines = [_select({}), _select({"scheduler_scan_limit": 10}, 2400.0)]
    text = report.claims_table(lines)
    assert "**default settings**" in text
    assert "**settings changed: scheduler_scan_limit=10**" in text
    tuned = text.split("settings changed")[1]
    assert "| 2,400 |" in tuned and "| 1,200 |" not in tuned
    assert "| granian x2 | postgresql |" in _row(text, "1,200")


def test_conditions_cells() -> None:
    line = _select({})
    assert server_of(line) == "granian x2"
    assert (
        load_of([_line("claims", "inproc", {}, {}, 2.0), _line("claims", "inproc", {}, {}, 6.0)])
        == "2.0-6.0"
    )
    assert server_of(_line("claims", "inproc", {}, {})) == "in process"


def test_targets_count_default_settings_runs_only_and_say_met_or_missed() -> None:
    lines = [
        _select({}, 1200.0), _select({}, 800.0), _select({}, 1000.0),
        _select({"scheduler_scan_limit": 10}, 5000.0),  # tuned: not counted
        _select({}, 900.0, db="sqlite"),
    ]  # fmt: skip
    assert report_tables.has_targets(lines)
    text = report_tables.targets_table(lines)
    assert "| 1,000 | met |" in _row(text, "postgresql") and _row(text, "postgresql").endswith(
        "| 3 |"
    )
    assert "| 900 | missed |" in _row(text, "sqlite")


def test_fill_and_register_tables() -> None:
    fill = _conditioned(
        "fill",
        {"hosts": 100, "mode": "placement", "limit": 0, "strategy": "pack",
         "partitioning": "strict", "workers": 8, "concurrency": 1},
        {"placed": 3800, "unplaced": 700, "give_ups": 2, "seconds": 19.0, "placed_per_s": 200.0,
         "memory_mb_used_pct": 99.9, "p99_ms": 80.0, "ended": "full", "over_capacity": 0,
         "list_length": 4600, "list_sha256": "0123456789abcdef"},
        {},
    )  # fmt: skip
    text = report_tables.fill_table([fill, fill])
    row = _row(text, "placement limit=0", "pack/strict", "8x1")
    assert "| 4,600 (01234567) | 3,800 |" in row and "| full | 0 |" in row and row.endswith("| 2 |")
    storm = _conditioned(
        "register", {"hosts": 10000, "clients": 64, "processes": 2, "threads": 32},
        {"providers_per_s": 310.0, "writes_per_s": 1240.0, "errors": 0,
         **{f"{k}_p50_ms": 10.0 for k in report_tables.KINDS},
         **{f"{k}_p99_ms": 90.0 for k in report_tables.KINDS}},
        {},
    )  # fmt: skip
    row = _row(report_tables.register_table([storm]), "64 (2x32)")
    assert "| 310 | 1,240 | 0 | 10 / 90 |" in row
    assert "registration storm" in report_tables.targets_table([storm])
    text = report.render([fill, storm])
    assert "## Filling the cloud" in text and "## Registration storm" in text


def test_the_seeds_table_on_its_own_query() -> None:
    def seed_line(filt: str, hosts: int, mean: float) -> dict[str, Any]:
        settings = {"hosts": hosts, "query": "seed", "concurrency": 1, "filter": filt,
                    "server_workers": 1}  # fmt: skip
        return _line("candidates", "serve", settings, {"p50_ms": mean - 1, "mean_ms": mean})

    lines = [seed_line("sql", 200, 30.0), seed_line("python", 200, 20.0),
             seed_line("memory", 200, 2.0)]  # fmt: skip
    row = _row(seed.seed_filtering_table(lines), "200")
    assert row.startswith("| 200 | 23.4 | 26.5 | 29.0 / 30.0 | 19.0 / 20.0 | 1.0 / 2.0 |")
    assert "## The seed's table" in report.render(lines)
