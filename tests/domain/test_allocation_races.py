"""Concurrency: many processes writing allocations never over-commit or lose a write.

K processes (each with its own engine) hammer a few small providers with
random allocation writes, emptying writes and deletes through
``berth.placement.write.replace``.  Each process owns its consumers, so it
knows what their final allocations and generations must be.  Afterwards:

* no provider's usage of any class exceeds (total - reserved) * ratio;
* every consumer holds exactly what its last successful write gave it, at
  the generation the successful writes add up to (a refused write changed
  nothing, an acknowledged one is there);
* a process never got a consumer-generation mismatch for its own consumers.
"""

from __future__ import annotations

import multiprocessing
import random
import uuid as uuidlib
from collections import Counter
from typing import Any

import pytest

from berth.db.engine import Database
from berth.placement import consumers, errors
from berth.placement.write import replace
from berth.placement.write.capacity import InvalidAllocation
from berth.placement.write.replace import ConsumerAllocations
from berth.placement.write.retry import atomically
from tests.helpers import add_provider, over_committed

PROCESSES = 8
OPERATIONS = 30
CONSUMERS_PER_PROCESS = 3
INVENTORY = {
    "VCPU": {"total": 5, "reserved": 1, "allocation_ratio": 1.5, "max_unit": 100},  # capacity 6
    "DISK_GB": {"total": 10, "reserved": 0, "allocation_ratio": 1.0, "max_unit": 100},
}

Expected = dict[str, tuple[dict[str, dict[str, int]], int | None]]


def make_providers(db: Database, count: int) -> list[str]:
    """``count`` providers with the small INVENTORY; their uuids."""
    return [add_provider(db, INVENTORY) for _ in range(count)]


def _random_resources(rng: random.Random, providers: list[str]) -> dict[str, dict[str, int]]:
    chosen = rng.sample(providers, rng.choice([1, 1, 2]))
    out = {}
    for rp in chosen:
        amounts = {"VCPU": rng.randint(1, 3), "DISK_GB": rng.randint(1, 4)}
        out[rp] = {rc: n for rc, n in amounts.items() if rng.random() < 0.8} or {"VCPU": 1}
    return out


def _step(
    db: Database, rng: random.Random, providers: list[str], state: Expected, stats: Counter[str]
) -> None:
    """One random operation on one of this process's consumers; updates ``state``."""
    uuid = rng.choice(list(state))
    held, gen = state[uuid]
    roll = rng.random()
    if roll < 0.15:
        try:
            atomically(
                db, lambda c: consumers.delete_allocations(c, uuid), 10, operation="allocations"
            )
        except errors.NotFound:
            assert not held, "delete found nothing where allocations were acknowledged"
            stats["delete-nothing"] += 1
            return
        state[uuid] = ({}, None)
        stats["deleted"] += 1
        return
    wanted = {} if roll < 0.3 else _random_resources(rng, providers)
    request = ConsumerAllocations(uuid, wanted, "project", "user", gen)
    try:
        replace.write(db, [request], check_generation=True, attempts=10)
    except InvalidAllocation:
        stats["refused"] += 1
        return
    except errors.StaleGeneration as exc:
        stats["mismatch"] += 1
        stats[f"bug: {exc.message}"] += 1
        return
    except errors.ConcurrentUpdate:
        stats["gave-up"] += 1
        return
    if wanted:
        state[uuid] = (wanted, (gen or 0) + 1)
    elif held:
        state[uuid] = ({}, None)  # emptied: the consumer is deleted
    else:
        state[uuid] = ({}, gen or 0)  # an empty write leaves a generation-0 consumer
    stats["written"] += 1


def _worker(url: str, seed: int, providers: list[str], start: Any, out: Any) -> None:
    db = Database(url)
    rng = random.Random(seed)
    state: Expected = {str(uuidlib.uuid4()): ({}, None) for _ in range(CONSUMERS_PER_PROCESS)}
    stats: Counter[str] = Counter()
    start.wait()
    try:
        for _ in range(OPERATIONS):
            _step(db, rng, providers, state, stats)
    except Exception as exc:  # reported to the parent, which fails the test
        stats[f"crash: {type(exc).__name__}: {exc}"] += 1
    finally:
        db.dispose()
    out.put((state, dict(stats)))


def run(
    db: Database, providers: list[str], urls: list[str] | None = None
) -> tuple[Expected, Counter[str]]:
    """The processes' writes; process i writes through ``urls[i % len(urls)]`` (default: db's)."""
    urls = urls or [db.url]
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Barrier(PROCESSES), mp.Queue()
    procs = [
        mp.Process(target=_worker, args=(urls[seed % len(urls)], seed, providers, start, out))
        for seed in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    expected: Expected = {}
    stats: Counter[str] = Counter()
    for _ in procs:
        state, counts = out.get(timeout=120)
        expected.update(state)
        stats.update(counts)
    for p in procs:
        p.join(timeout=30)
    return expected, stats


def _actual(db: Database, uuid: str) -> tuple[dict[str, dict[str, int]], int | None]:
    with db.read() as conn:
        view = consumers.allocations_of(conn, uuid)
        row = consumers.find_consumer(conn, uuid)
    held: dict[str, dict[str, int]] = {}
    for h in view.allocations if view else []:
        held.setdefault(h.key, {})[h.resource_class] = h.used
    return held, (row.generation if row else None)


def check(db: Database, expected: Expected, stats: Counter[str]) -> None:
    """No crash, no over-commit, every acknowledged write there, both outcomes exercised."""
    problems = [k for k in stats if k.startswith(("crash", "bug"))]
    assert not problems, stats
    assert over_committed(db) == []
    for uuid, (held, gen) in expected.items():
        assert _actual(db, uuid) == (held, gen), (uuid, stats)
    # The run must have exercised both outcomes, or it proves nothing.
    assert stats["written"] > PROCESSES and stats["refused"] > 0, stats


@pytest.mark.slow
def test_concurrent_writers_never_over_commit_or_lose_writes(db: Database) -> None:
    providers = make_providers(db, 3)
    expected, stats = run(db, providers)
    check(db, expected, stats)
