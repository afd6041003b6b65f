"""A small run of the whole lab (100 hosts, a few seconds each) through the command line."""

from __future__ import annotations

import pstats
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth.bench import records
from berth.cli import app


def _bench(*args: str) -> str:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


@pytest.mark.slow  # spawns scheduler processes: ~30 s on a busy 2-core machine
def test_populate_measure_claim_report(tmp_path: Path) -> None:
    out = str(tmp_path / "results.jsonl")
    db = ["--database-url", f"sqlite:///{tmp_path / 'berth.sqlite'}", "--out", out]
    _bench("populate", "--hosts", "100", "--profile", "candidates", *db)
    shown = _bench(
        "candidates", "--queries", "limit,trait", "--requests", "20", "--seconds", "3", *db
    )
    assert "limit" in shown and "trait" in shown
    common = ["--workers", "2", "--seconds", "2", "--hosts", "100", "--partitioning", "modulo"]
    _bench("claims", *common, *db)
    _bench("claims", "--mode", "placement", "--strategy", "spread", *common, *db)
    lines = records.load([out])
    assert [x["kind"] for x in lines] == [
        "populate",
        "candidates",
        "candidates",
        "claims",
        "claims",
    ]
    populate, limit = lines[0]["result"], lines[1]["result"]
    assert populate["providers"] == 100 and populate["path"] == "bulk-sql"
    assert limit["candidates"] == 50 and limit["errors"] == 0 and limit["requests"] == 20
    for claims in lines[3:]:
        assert claims["result"]["claimed"] > 0
        assert claims["result"]["over_capacity"] == 0
        assert claims["result"]["checked_via"] == "sql"
    assert lines[4]["settings"]["mode"] == "placement"
    report = tmp_path / "docs" / "report.md"
    _bench("report", out, "--output", str(report), "--plots", str(tmp_path / "docs" / "bench"))
    text = report.read_text()
    assert "## Claims" in text and "## Allocation candidates" in text
    assert "](bench/candidates-limit.png)" in text


@pytest.mark.slow  # spawns scheduler processes
def test_claims_in_batches_with_cpu_time_and_a_profile(tmp_path: Path) -> None:
    out, profile = str(tmp_path / "results.jsonl"), tmp_path / "claims.prof"
    db = ["--database-url", f"sqlite:///{tmp_path / 'berth.sqlite'}", "--out", out]
    _bench("claims", "--workers", "2", "--seconds", "2", "--hosts", "20", "--partitioning",
           "none", "--batch", "3", "--cpu-time", "--cprofile", str(profile), *db)  # fmt: skip
    (line,) = records.load([out])
    assert line["settings"]["batch"] == 3 and line["settings"]["cpu_time"] is True
    assert line["result"]["claimed"] > 0 and line["result"]["over_capacity"] == 0
    assert line["result"]["client_cpu_ms_per_claim"] > 0
    assert line["result"]["database_cpu_ms_per_claim"] >= 0
    assert pstats.Stats(str(profile)).total_calls > 0
    refused = CliRunner().invoke(app, ["bench", "claims", "--mode", "placement", "--batch", "2",
                                       "--hosts", "20", *db])  # fmt: skip
    assert refused.exit_code == 2 and "--mode scheduler" in refused.output
