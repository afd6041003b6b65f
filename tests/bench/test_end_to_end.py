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
    assert [x["kind"] for x in lines] == [  # berth serve by default: its cold start first
        "populate",
        "startup",
        "candidates",
        "candidates",
        "claims",
        "claims",
    ]
    populate, limit = lines[0]["result"], lines[2]["result"]
    assert populate["providers"] == 100 and populate["path"] == "bulk-sql"
    assert limit["candidates"] == 50 and limit["errors"] == 0 and limit["requests"] == 20
    served = {"target": "serve", "kind": "berth-http", "db": "sqlite", "server": "granian",
              "server_workers": 2, "settings": {}}  # fmt: skip
    assert lines[2]["conditions"] == served
    for claims in lines[4:]:
        assert claims["result"]["claimed"] > 0
        assert claims["result"]["over_capacity"] == 0
        assert claims["result"]["checked_via"] == "sql"
    assert lines[4]["conditions"]["settings"] == {"scheduler_weighers": "ram=-1,cpu=-1",
        "scheduler_partitioning": "modulo", "scheduler_scan_random_start": False}  # fmt: skip
    assert lines[5]["settings"]["mode"] == "placement" and lines[5]["settings"]["limit"] == 50
    assert lines[5]["conditions"]["settings"] == {}  # client-side claims change no setting
    report = tmp_path / "docs" / "report.md"
    _bench("report", out, "--output", str(report), "--plots", str(tmp_path / "docs" / "bench"))
    text = report.read_text()
    assert "## Claims" in text and "## Allocation candidates" in text
    assert "](bench/candidates-limit.png)" in text


@pytest.mark.slow  # spawns scheduler processes
def test_claims_in_batches_with_cpu_time_and_a_profile(tmp_path: Path) -> None:
    out, profile = str(tmp_path / "results.jsonl"), tmp_path / "claims.prof"
    db = ["--database-url", f"sqlite:///{tmp_path / 'berth.sqlite'}", "--out", out]
    _bench("claims", "--target", "inproc", "--workers", "2", "--seconds", "2", "--hosts", "20",
           "--partitioning", "none", "--batch", "3", "--cpu-time", "--cprofile", str(profile),
           *db)  # fmt: skip
    (line,) = records.load([out])
    assert line["settings"]["batch"] == 3 and line["settings"]["cpu_time"] is True
    assert line["result"]["claimed"] > 0 and line["result"]["over_capacity"] == 0
    assert line["result"]["client_cpu_ms_per_claim"] > 0
    assert line["result"]["database_cpu_ms_per_claim"] >= 0
    assert pstats.Stats(str(profile)).total_calls > 0
    refused = CliRunner().invoke(app, ["bench", "claims", "--mode", "placement", "--batch", "2",
                                       "--hosts", "20", *db])  # fmt: skip
    assert refused.exit_code == 2 and "--mode scheduler" in refused.output


@pytest.mark.slow  # serves berth and spawns client processes: ~40 s on a busy 2-core machine
def test_fill_storm_settings_and_python_filtering(tmp_path: Path) -> None:
    out = str(tmp_path / "results.jsonl")
    db = ["--database-url", f"sqlite:///{tmp_path / 'berth.sqlite'}", "--out", out]
    _bench("register", "--hosts", "30", "--clients", "4", "--processes", "2", *db)
    _bench("fill", "--hosts", "6", "--workers", "2", "--mode", "placement", "--partitioning",
           "strict", "--seed", "7", *db)  # fmt: skip
    shown = _bench("claims", "--hosts", "20", "--workers", "1", "--concurrency", "2",
                   "--seconds", "2", "--partitioning", "none", "--strategy", "default",
                   "--set", "scheduler_scan_limit=10", *db)  # fmt: skip
    assert "[scheduler_scan_limit=10]" in shown
    _bench("populate", "--hosts", "20", *db)
    _bench("candidates", "--filter", "python", "--queries", "seed", "--requests", "10",
           "--server-workers", "1", *db)  # fmt: skip
    storm, fill, claims, _, _, seed = records.load([out])
    r = storm["result"]
    assert (r["registered"], r["writes"], r["errors"], r["providers_found"]) == (30, 120, 0, 30)
    assert storm["settings"]["clients"] == 4 and storm["conditions"]["settings"] == {}
    r = fill["result"]
    # The list has 100 GB per host more than fits: it may run out just before the smallest
    # size finds no host in both partitions (placement-bench's runs could end so too).
    assert r["ended"] in ("full", "list") and r["over_capacity"] == 0
    assert r["ended"] == "list" or r["workers_full"] == 2
    assert r["placed"] + r["unplaced"] + r["give_ups"] <= r["list_taken"] <= r["list_length"]
    assert r["memory_mb_used_pct"] > 90 and r["unplaced"] > 0
    assert claims["conditions"]["settings"] == {"scheduler_scan_limit": 10}
    assert claims["result"]["title"].endswith("default/none W=1x2 [scheduler_scan_limit=10]")
    assert seed["settings"]["filter"] == "python" and seed["result"]["candidates"] == 1
    assert seed["conditions"]["settings"] == {"candidates_filter": "python"}
