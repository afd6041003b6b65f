"""berth bench hosts scale, smallest: one host behind HAProxy, a few seconds of each workload."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.bench import records, scale

pytestmark = [pytest.mark.namespaces, pytest.mark.slow]


def test_one_host_reads_and_claims_through_the_front(postgres_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    plan = scale.ScalePlan(postgres_url, (1,), hosts=20, seconds=2, clients=1, threads=2,
                           claim_workers=1, idle=0.5)  # fmt: skip
    found = scale.run_all(plan, str(out))
    assert [r["workload"] for r in found] == ["read", "claims"]
    lines = records.load([out])
    assert [x["settings"]["workload"] for x in lines] == ["read", "claims"]
    read, claimed = (x["result"] for x in lines)
    assert read["requests"] > 0 and read["errors"] == 0 and read["rate"] > 0
    assert claimed["claimed"] > 0 and claimed["over_capacity"] == 0
    for r in (read, claimed):
        assert r["hosts_cpu_ms_per_request"] > 0
        assert {"front_cpu_ms_per_request", "database_cpu_ms_per_request"} <= set(r)
    assert lines[0]["conditions"]["berth_hosts"] == 1
    assert lines[0]["conditions"]["settings"] == {}  # the hosts ran berth's defaults
