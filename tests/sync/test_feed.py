"""The change feed: every committed change is seen once, even out of id order."""

from __future__ import annotations

from sqlalchemy import insert

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import changes
from berth.sync.feed import ChangeFeed


def test_first_poll_asks_for_full_reload(db: Database) -> None:
    feed = ChangeFeed(db)
    assert feed.poll() is None
    assert feed.poll() == set()


def test_changes_seen_once(db: Database) -> None:
    feed = ChangeFeed(db)
    feed.poll()
    with db.write() as conn:
        changes.record(conn, [5, 7])
    assert feed.poll() == {5, 7}
    assert feed.poll() == set()


def test_late_commit_of_lower_id_is_not_lost(db: Database) -> None:
    feed = ChangeFeed(db)
    feed.poll()
    now = utcnow()
    base = feed.high
    # Simulate: id base+2 commits first, base+1 (an older transaction) later.
    with db.write() as conn:
        conn.execute(insert(t.change_log).values(id=base + 2, provider_id=2, created_at=now))
    assert feed.poll() == {2}
    assert base + 1 in feed.holes
    with db.write() as conn:
        conn.execute(insert(t.change_log).values(id=base + 1, provider_id=1, created_at=now))
    assert feed.poll() == {1}
    assert not feed.holes


def test_everything_marker_requests_reload(db: Database) -> None:
    feed = ChangeFeed(db)
    feed.poll()
    with db.write() as conn:
        changes.record(conn, [changes.EVERYTHING])
    assert feed.poll() is None


def test_transaction_in_flight_at_start_is_not_lost(db: Database) -> None:
    now = utcnow()
    with db.write() as conn:
        conn.execute(insert(t.change_log).values(id=10, provider_id=3, created_at=now))
    feed = ChangeFeed(db)
    assert feed.poll() is None  # start: the top is 10, 1..9 are open holes
    with db.write() as conn:  # id 9 was handed out earlier and commits only now
        conn.execute(insert(t.change_log).values(id=9, provider_id=4, created_at=now))
    assert feed.poll() == {4}
