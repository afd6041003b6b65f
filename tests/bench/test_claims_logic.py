"""Counting and summing scheduler outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from berth.bench import procfs
from berth.bench.claimers import Attempt
from berth.bench.claims import ClaimsPlan, cpu_per_claim, make_claimer, summarise, tally
from berth.bench.targets import Target


def test_tally_counts_each_outcome() -> None:
    stats: Counter[str] = Counter()
    tally(stats, Attempt(claimed=True, conflicts=2, retries=2))
    tally(stats, Attempt(gave_up=True, conflicts=5, retries=4))
    tally(stats, Attempt(no_host=True))
    tally(stats, Attempt(errors=2, retries=2, claimed=True))
    assert +stats == Counter(
        requests=4, claimed=2, conflicts=7, retries=8, give_ups=1, no_host=1, server_errors=2
    )


def test_summary_rates_use_the_longest_worker_and_latencies_of_successes() -> None:
    first = {"claimed": 30, "conflicts": 10, "requests": 32, "retries": 10, "full": 0}
    second = {"claimed": 70, "conflicts": 0, "requests": 70, "retries": 0, "full": 1}
    workers = [(first, [0.01] * 30, 9.5), (second, [0.03] * 70, 10.0)]
    result = summarise(workers, seconds=10.0)
    assert result["claims_per_s"] == 10.0
    assert result["conflicts_per_s"] == 1.0
    assert result["conflict_pct"] == round(100 * 10 / 110, 2)
    assert result["cloud_full"] is True
    assert result["p50_ms"] == 30.0 and result["p99_ms"] == 30.0
    assert result["requests"] == 102


def test_empty_run_does_not_divide_by_zero() -> None:
    result = summarise([({}, [], 0.0)], seconds=5.0)
    assert result["claims_per_s"] == 0.0 and result["conflict_pct"] == 0.0


def test_cpu_per_claim_sums_the_schedulers_and_divides_by_claims() -> None:
    workers = [
        ({"claimed": 30, "cpu_us": 60_000}, [], 1.0),
        ({"claimed": 70, "cpu_us": 40_000}, [], 1.0),
    ]
    assert cpu_per_claim(workers, database_s=0.05) == {
        "client_cpu_ms_per_claim": 1.0,
        "database_cpu_ms_per_claim": 0.5,
    }
    assert cpu_per_claim([({}, [], 0.0)], 0.0)["client_cpu_ms_per_claim"] == 0.0
    served = cpu_per_claim(workers, database_s=0.05, server_s=0.3)
    assert served["server_cpu_ms_per_claim"] == 3.0


def test_a_process_trees_cpu_time_counts_its_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
         "while time.process_time() < end: pass\ntime.sleep(30)"]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while procfs.tree_cpu_s(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procfs.tree_cpu_s(child.pid) >= 0.25
        assert procfs.tree_cpu_s(os.getpid()) >= procfs.tree_cpu_s(child.pid)
    finally:
        child.kill()
        child.wait()


def test_result_lines_name_the_optional_knobs_only_when_changed() -> None:
    target = Target("inproc", "berth-inproc", database_url="sqlite://")
    plain = ClaimsPlan(target).settings()
    assert not {"batch", "cpu_time", "cprofile"} & set(plain)
    assert plain["target"]["name"] == "inproc" and plain["limit"] == 0
    changed = ClaimsPlan(target, batch=4, cpu_time=True, overrides={"scheduler_scan_limit": 10})
    assert changed.settings()["batch"] == 4 and changed.settings()["cpu_time"] is True
    assert changed.varied() == {"scheduler_scan_limit": 10, "batch": 4}


def test_several_instances_per_request_need_berths_scheduler() -> None:
    target = Target("http://x", "placement-http", "http://x")
    with pytest.raises(ValueError, match="--mode scheduler"):
        make_claimer(ClaimsPlan(target, mode="placement", batch=2), 0)


def test_database_cpu_is_a_clock_that_only_moves_forward() -> None:
    first = procfs.database_cpu_s()
    assert 0.0 <= first <= procfs.database_cpu_s()
