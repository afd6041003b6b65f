"""The lab's issue-12 pieces without servers: fill lists, conditions, the storm's client, strict."""

from __future__ import annotations

import multiprocessing
import os
import random
from pathlib import Path

import pytest
import typer
from conftest import fresh_database

from berth.bench import fill, register, strategies
from berth.bench.claimers import PlacementClaimer
from berth.bench.claims import Queue, fill_summary
from berth.bench.cloud import from_profile, host_uuid
from berth.bench.targets import Target, served_settings
from berth.bench.transport import in_process


def test_a_fill_list_is_fixed_by_seed_and_cloud_and_overfills_it() -> None:
    topo = from_profile("placement-bench", 10)
    first, again = fill.request_list(topo, 3), fill.request_list(topo, 3)
    assert first == again and first != fill.request_list(topo, 4)
    assert set(first) == set(range(len(strategies.SIZES)))
    ram = sum(strategies.SIZES[i][1] for i in first)
    usable = (262144 - 1024) * 1.5 * 10
    assert usable < ram <= usable + fill.SURPLUS_MB_PER_HOST * 10
    assert len(fill.request_list(from_profile("placement-bench", 20), 3)) > len(first)


def test_the_shared_queue_hands_out_each_request_once_and_stops() -> None:
    taken = multiprocessing.get_context("spawn").Value("q", 0)
    queue = Queue(bytes([5, 0, 3]), taken)
    assert [queue.next(), queue.next()] == [5, 0]
    queue.stopped.set()
    assert queue.next() is None and taken.value == 2
    assert Queue(bytes([5, 0, 3]), taken).next() == 3
    assert Queue(bytes([5, 0, 3]), taken).next() is None


def test_fill_summary_says_why_it_ended() -> None:
    full = [({"claimed": 10, "no_host": 2, "full": 1}, [], 2.0),
            ({"claimed": 30, "no_host": 1, "full": 1}, [], 4.0)]  # fmt: skip
    summary = fill_summary(full, bytes(50), 45)
    assert summary["ended"] == "full" and summary["placed"] == 40 and summary["unplaced"] == 3
    assert summary["placed_per_s"] == 10.0 and summary["list_taken"] == 45
    assert fill_summary([({"full": 0}, [], 1.0)], bytes(5), 5)["ended"] == "list"
    assert fill_summary([({"full": 0}, [], 1.0)], bytes(5), 2)["ended"] == "time"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No BERTH_* setting inherited from the shell running the tests."""
    for name in list(os.environ):
        if name.startswith("BERTH_") and not name.startswith("BERTH_TEST"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_served_settings_are_read_as_the_server_reads_them(
    clean_env: pytest.MonkeyPatch,
) -> None:
    monkeypatch = clean_env
    assert served_settings("sqlite://", 2, {}) == {}
    monkeypatch.setenv("BERTH_SCHEDULER_ALTERNATES", "5")  # inherited from the lab's shell
    chosen = served_settings("sqlite://", 2, {"BERTH_SCHEDULER_SCAN_LIMIT": "10"})
    assert chosen == {"scheduler_alternates": 5, "scheduler_scan_limit": 10}
    with pytest.raises(typer.BadParameter, match="SCHEDULER_SCAN_LIMIT"):
        served_settings("sqlite://", 2, {"BERTH_SCHEDULER_SCAN_LIMIT": "many"})


def test_in_process_conditions_leave_out_the_lab_and_logging(clean_env: pytest.MonkeyPatch) -> None:
    target = Target("inproc", "berth-inproc", database_url="sqlite://",
                    overrides={"candidates_filter": "python", "log_level": "ERROR"})  # fmt: skip
    found = target.conditions()
    assert found["settings"] == {"candidates_filter": "python"} and found["db"] == "sqlite"
    assert found["server"] == "" and found["kind"] == "berth-inproc"


def test_strict_partitions_of_the_client_and_of_the_scheduler() -> None:
    chosen = strategies.scheduler_settings("pack", "strict", 0, 2)
    assert chosen["scheduler_partitioning"] == "modulo"
    assert chosen["scheduler_partition_fallback"] is False
    claimer = PlacementClaimer(None, "pack", "strict", 1, 3)  # type: ignore[arg-type]
    found = [(host_uuid(i), {}, {"resources": {}}) for i in range(6)]
    assert sorted(claimer._ranked(found, {"VCPU": 1}, random.Random(0))) == [1, 4]
    mine = [found[0], found[2], found[3]]  # none of worker 1's hosts
    assert claimer._ranked(mine, {"VCPU": 1}, random.Random(0)) == []
    loose = PlacementClaimer(None, "pack", "modulo", 1, 3)  # type: ignore[arg-type]
    assert loose._ranked(found, {"VCPU": 1}, random.Random(0))[:2] in ([1, 4], [4, 1])


def test_a_storm_client_registers_a_host_with_four_writes(tmp_path: Path) -> None:
    db = fresh_database("sqlite", tmp_path)
    url = str(db.engine.url)
    db.dispose()
    client = register.Client(in_process(url))
    specs = register.host_specs(150)
    assert client.register(specs[120])
    assert client.counts == {"writes": 4, "registered": 1}
    assert all(len(client.latencies[k]) == 1 for k in register.KINDS)
    assert not client.register(specs[120])  # already there: the create fails, nothing else runs
    assert client.counts["error create 409"] == 1 and client.counts["writes"] == 4
    status, body = client.transport.request("GET", f"/resource_providers/{specs[120].uuid}/traits")
    assert status == 200 and b"HW_CPU_X86_AVX2" in body
    summary = register.summarise([(dict(client.counts), client.latencies, 12.0)], 10.0)
    assert summary["providers_per_s"] == 0.5 and summary["errors_by_call"] == {"create 409": 1}
