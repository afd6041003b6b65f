"""Report rendering: medians of repeats, one table per kind, plots."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from berth.bench import plots, records, report
from berth.cli import app

MACHINE = {
    "cores": 2,
    "memory_mb": 4096,
    "python": "3.11",
    "platform": "Linux",
    "loadavg": [1.0, 1, 1],
}


def _line(
    kind: str, target: str, settings: dict[str, Any], result: dict[str, Any], load: float = 1.0
) -> dict:
    machine = {**MACHINE, "loadavg": [load, 1.0, 1.0]}
    return {"kind": kind, "target": target, "settings": settings, "result": result,
            "machine": machine, "versions": {"berth": "0.1.0"}, "at": "now"}  # fmt: skip


def _cand(target: str, hosts: int, p50: float, query: str = "limit", filt: str = "memory") -> dict:
    settings = {"hosts": hosts, "query": query, "concurrency": 1, "filter": filt}
    result = {"p50_ms": p50, "p90_ms": p50, "p99_ms": 2 * p50, "throughput_rps": 1000 / p50,
              "candidates": 50}  # fmt: skip
    return _line("candidates", target, settings, result)


def _claims(target: str, hosts: int, part: str, rate: float, mode: str = "scheduler") -> dict:
    settings = {"hosts": hosts, "mode": mode, "strategy": "pack", "partitioning": part,
                "workers": 8}  # fmt: skip
    result = {"claims_per_s": rate, "conflicts_per_s": 1.0, "conflict_pct": 0.5, "retries": 3,
              "give_ups": 0, "p50_ms": 4.0, "p99_ms": 9.0, "over_capacity": 0}  # fmt: skip
    return _line("claims", target, settings, result)


LINES = [
    _cand("serve", 100, 1.0), _cand("serve", 100, 3.0), _cand("serve", 100, 2.0),
    _cand("serve", 800, 2.5), _cand("reference", 100, 40.0), _cand("reference", 800, 130.0),
    _cand("serve", 100, 9.0, filt="sql"), _cand("serve", 800, 30.0, filt="sql"),
    _cand("serve", 800, 12.0, filt="python"),
    _claims("inproc", 100, "none", 500.0), _claims("inproc", 100, "none", 700.0),
    _claims("inproc", 800, "modulo", 900.0),
    _claims("inproc", 800, "none", 650.0), _claims("reference", 100, "none", 15.0, "placement"),
]  # fmt: skip


def _row(text: str, *cells: str) -> str:
    rows = [line for line in text.splitlines() if all(f"| {c} |" in line for c in cells)]
    assert len(rows) == 1, (cells, rows)
    return rows[0]


def test_repeats_are_summarised_by_their_median() -> None:
    text = report.candidates_table(LINES)
    row = _row(text, "berth (HTTP)", "memory", "", "100")
    assert "| 2.00 |" in row and row.endswith("| 3 |")  # median of 1, 3, 2 over 3 runs
    claims = report.claims_table(LINES)
    assert "| 600 |" in _row(claims, "berth (in process)", "100", "none")


def test_every_kind_gets_its_section_and_the_load_is_reported(tmp_path: Path) -> None:
    lines = [*LINES, _line("startup", "serve", {"hosts": 100, "server_workers": 1},
                           {"first_answer_s": 1.5, "first_request_ms": 300.0,
                            "worker_rss_mb": [120.0, 80.0]}, load=7.5)]  # fmt: skip
    text = report.render(lines)
    for title in ("## Allocation candidates", "## Claims", "## Cold start and memory"):
        assert title in text
    assert "## Worker processes" not in text
    assert "1.0 to 7.5" in text
    assert _row(report.startup_table(lines), "berth (HTTP)", "100").endswith("| 300 | 120 |")


def test_plots_are_drawn_and_linked(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    text = report.render(LINES, out / "bench", relative_to=out)
    for name in ("candidates-limit.png", "claims.png", "filtering.png"):
        assert (out / "bench" / name).stat().st_size > 1000
        assert f"(bench/{name})" in text
    assert not (out / "bench" / "candidates-nolimit.png").exists()  # no such lines


def test_report_of_written_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for line in LINES:
        records.append(path, line)
    assert report.render(records.load([path])) == report.render(LINES)


def test_seed_tables_put_published_and_measured_side_by_side() -> None:
    from berth.bench import seed

    filtering = seed.filtering_table(LINES)
    assert _row(filtering, "800").startswith("| 800 | 34.8 | 48.3 | 30.0 | 12.0 | 2.5 | 130.0 |")
    assert _row(filtering, "400").startswith("| 400 | 27.6 | 34.7 |  |  |  |  |")
    claims = seed.claims_table(LINES)
    assert _row(claims, "100").startswith("| 100 | 54.1 | 97.1 | 600.0 |  |  |  | 15.0 |")
    assert _row(claims, "800").endswith("| 8.3 | 8.8 |")


def _report_command(tmp_path: Path, *extra: str) -> Result:
    path = tmp_path / "r.jsonl"
    for line in LINES:
        records.append(path, line)
    output = tmp_path / "report.md"
    return CliRunner().invoke(app, ["bench", "report", str(path), "--output", str(output), *extra])


def test_without_matplotlib_plots_fail_clearly_and_tables_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    asked = _report_command(tmp_path, "--plots", str(tmp_path / "plots"))
    assert asked.exit_code == 2 and "pip install 'berth[bench]'" in asked.output
    assert "Traceback" not in asked.output and not (tmp_path / "plots").exists()
    with pytest.raises(plots.PlotsUnavailable, match=r"berth\[bench\]"):
        report.render(LINES, tmp_path / "plots")
    default = _report_command(tmp_path)
    assert default.exit_code == 0, default.output
    assert "## Claims" in (tmp_path / "report.md").read_text()
    assert "pip install 'berth[bench]'" in default.output


def test_since_keeps_one_runs_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for at in (
        "2026-12-01T10:00:00+00:00",
        "2026-12-02T05:09:00+00:00",
        "2026-12-02T06:00:00+00:00",
    ):
        records.append(path, {"kind": "fuzz", "at": at})
    records.append(path, {"kind": "fuzz"})  # no time: never in a run's report
    assert len(records.load([path])) == 4
    since = datetime.fromisoformat("2026-12-02T05:09:00+00:00")
    kept = records.load([path], since=since)
    assert [x["at"] for x in kept] == ["2026-12-02T05:09:00+00:00", "2026-12-02T06:00:00+00:00"]
    until = datetime.fromisoformat("2026-12-02T06:00:00+00:00")
    one_run = records.load([path], since=since, until=until)
    assert [x["at"] for x in one_run] == ["2026-12-02T05:09:00+00:00"]


def test_report_since_option(tmp_path: Path) -> None:
    late = _report_command(tmp_path, "--since", "2999-01-01T00:00")
    assert late.exit_code == 0 and "0 results" in late.output
    bad = _report_command(tmp_path, "--since", "yesterday")
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output
    early = _report_command(tmp_path, "--until", "2000-01-01T00:00")
    assert early.exit_code == 0 and "0 results" in early.output
