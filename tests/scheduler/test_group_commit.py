"""The group commit: many new consumers' claims judged and written in one transaction."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from berth.db import tables as t
from berth.db.engine import CommitUnknown, Database
from berth.placement.class_ids import ResourceClassCache
from berth.placement.write import batch, generations
from berth.placement.write.batch import NewConsumer, OwnerIds
from berth.scheduler.group_commit import GroupCommit
from tests.helpers import over_committed
from tests.scheduler.conftest import consumers_of, host_uuid, usage, write_cloud


def _uuid(i: int) -> str:
    return f"cccccccc-0000-0000-0000-{i:012d}"


def _one(i: int, host: int, vcpu: int) -> list[NewConsumer]:
    return [NewConsumer(_uuid(i), {host_uuid(host): {"VCPU": vcpu}}, "proj", "user")]


def _write(db: Database, requests: list[list[NewConsumer]], check: bool = True) -> list[str]:
    with db.write() as conn:
        verdicts = batch.write(conn, requests, ResourceClassCache(conn), OwnerIds(), check)
    return [v.kind for v in verdicts]


def test_requests_are_judged_in_order_each_all_or_nothing(db: Database) -> None:
    write_cloud(db, 2)  # 8 VCPU each
    pair = [  # the second instance does not fit after the first: neither is written
        NewConsumer(_uuid(10), {host_uuid(1): {"VCPU": 2}}, "proj", "user"),
        NewConsumer(_uuid(11), {host_uuid(1): {"VCPU": 9}}, "proj", "user"),
    ]
    kinds = _write(db, [_one(1, 1, 5), _one(2, 1, 4), _one(3, 1, 3), pair, _one(4, 2, 8)])
    assert kinds == ["written", "full", "written", "full", "written"]
    assert usage(db) == {host_uuid(1): {"VCPU": 8}, host_uuid(2): {"VCPU": 8}}
    assert consumers_of(db) == {
        _uuid(1): host_uuid(1),
        _uuid(3): host_uuid(1),
        _uuid(4): host_uuid(2),
    }
    with db.read() as conn:
        rows = conn.execute(select(t.consumers.c.uuid, t.consumers.c.generation)).all()
    assert {r.generation for r in rows} == {1}  # as after the API's first write


def test_refusals_say_why_as_the_api_does(db: Database) -> None:
    write_cloud(db, 1)
    missing = [NewConsumer(_uuid(2), {host_uuid(9): {"VCPU": 1}})]
    no_class = [NewConsumer(_uuid(3), {host_uuid(1): {"CUSTOM_NONE": 1}})]
    with db.write() as conn:
        requests = [_one(1, 1, 5), _one(5, 1, 4), _one(6, 1, 9), missing, no_class]
        verdicts = batch.write(conn, requests, ResourceClassCache(conn), OwnerIds())
    unable = f"Unable to create allocation for 'VCPU' on resource provider '{host_uuid(1)}'. "
    assert verdicts[1].message == unable + "The requested amount would exceed the capacity."
    constraints = "The requested amount would violate inventory constraints."
    assert verdicts[2].message == unable + constraints
    assert [v.kind for v in verdicts] == ["written", "full", "full", "full", "full"]
    assert "does not exist" in verdicts[3].message and "invalid" in verdicts[4].message
    assert consumers_of(db) == {_uuid(1): host_uuid(1)}


def test_an_existing_consumer_is_refused_or_caught_by_the_key(db: Database) -> None:
    write_cloud(db, 1)
    assert _write(db, [_one(1, 1, 1)]) == ["written"]
    assert _write(db, [_one(1, 1, 1), _one(2, 1, 1), _one(2, 1, 1)]) == [
        "exists",
        "written",
        "exists",
    ]
    with pytest.raises(IntegrityError):
        _write(db, [_one(1, 1, 1)], check=False)
    assert usage(db) == {host_uuid(1): {"VCPU": 2}}


def test_a_stale_generation_loses_the_swap(db: Database) -> None:
    write_cloud(db, 2)
    RP = t.resource_providers
    with db.write() as conn:
        ids = dict(conn.execute(select(RP.c.uuid, RP.c.id)).all())
        one, two = ids[host_uuid(1)], ids[host_uuid(2)]
        before = dict(conn.execute(select(RP.c.id, RP.c.generation)).all())
        assert generations.swap(conn, {one: before[one], two: before[two] + 5}) == {one}
        assert generations.swap(conn, {one: before[one]}) == set()  # already moved on
        after = dict(conn.execute(select(RP.c.id, RP.c.generation)).all())
    assert after == {one: before[one] + 1, two: before[two]}


class _HeldDatabase:
    """A database whose first write transaction waits until ``ready()`` says go."""

    def __init__(self, db: Database, ready: threading.Event) -> None:
        self.db = db
        self.ready = ready
        self.transactions = 0

    @contextlib.contextmanager
    def write(self) -> Iterator[object]:
        self.transactions += 1
        if self.transactions == 1:
            assert self.ready.wait(30)
        with self.db.write() as conn:
            yield conn


def test_claims_queued_meanwhile_share_the_next_transaction(db: Database) -> None:
    write_cloud(db, 4)  # 32 VCPU in all
    ready = threading.Event()
    held = _HeldDatabase(db, ready)
    group_commit = GroupCommit(held, retries=3)  # type: ignore[arg-type]
    with db.read() as conn:
        known = ResourceClassCache(conn)
    jobs: dict[int, str] = {}

    def claim(i: int) -> None:
        job = group_commit.claim(_one(i, 1 + i % 4, 3), known)
        assert job.verdict is not None
        jobs[i] = job.verdict.kind

    _behind_a_leader(claim, lambda: held.transactions, group_commit, 15, ready)
    assert held.transactions == 2  # the leader's own, then all fifteen at once
    assert sorted(jobs.values()).count("written") == 8  # 4 hosts x two of 3 VCPU
    assert over_committed(db) == []
    claimed = {_uuid(i) for i, kind in jobs.items() if kind == "written"}
    assert set(consumers_of(db)) == claimed


class _DownDatabase:
    """A database whose first write transaction waits for ``ready``, then finds the database
    gone (while connecting, or while committing); later ones would work."""

    def __init__(self, db: Database, ready: threading.Event, error: Exception) -> None:
        self.db, self.ready, self.error = db, ready, error
        self.transactions = 0

    @contextlib.contextmanager
    def write(self) -> Iterator[object]:
        self.transactions += 1
        if self.transactions == 1:
            assert self.ready.wait(30)
            raise self.error
        with self.db.write() as conn:
            yield conn


LOST = OperationalError("SELECT", {}, Exception(2013, "Lost connection"))


def _commit_unknown() -> CommitUnknown:
    try:
        raise CommitUnknown("lost during COMMIT") from LOST
    except CommitUnknown as exc:
        return exc


@pytest.mark.parametrize("error", [LOST, _commit_unknown()], ids=["connect", "commit"])
def test_claims_queued_behind_a_batch_that_found_the_database_away_fail_with_it(
    db: Database, error: Exception
) -> None:
    """They are answered 503 at once instead of waiting for one more transaction of their
    own; only the claims of the batch that reached COMMIT are of unknown outcome."""
    write_cloud(db, 4)
    ready = threading.Event()
    down = _DownDatabase(db, ready, error)
    group_commit = GroupCommit(down, retries=3)  # type: ignore[arg-type]
    with db.read() as conn:
        known = ResourceClassCache(conn)
    raised: dict[int, Exception] = {}

    def claim(i: int) -> None:
        try:
            group_commit.claim(_one(i, 1 + i % 4, 1), known)
        except Exception as exc:
            raised[i] = exc

    _behind_a_leader(claim, lambda: down.transactions, group_commit, 5, ready)
    assert down.transactions == 1
    assert raised[0] is error
    assert sorted(raised) == list(range(6))
    assert all(raised[i] is LOST for i in range(1, 6))
    assert consumers_of(db) == {}
    assert group_commit.claim(_one(9, 1, 1), known).verdict is not None  # it serves again


def _behind_a_leader(
    claim: Callable[[int], None],
    transactions: Callable[[], int],
    group_commit: GroupCommit,
    followers: int,
    ready: threading.Event,
) -> None:
    """Claim 0 in a thread until it is in its transaction, then claims 1 to ``followers``
    in threads until all of them are queued behind it; set ``ready`` and wait for them all."""
    first = threading.Thread(target=claim, args=(0,))
    first.start()
    while transactions() == 0:  # the leader is in its transaction
        threading.Event().wait(0.001)
    others = [threading.Thread(target=claim, args=(i,)) for i in range(1, followers + 1)]
    for thread in others:
        thread.start()
    while len(group_commit.queue) < followers:
        threading.Event().wait(0.001)
    ready.set()
    for thread in [first, *others]:
        thread.join(30)
