"""The change feed: every committed change is seen once, even out of id order."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import OperationalError

from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import changes
from berth.sync.feed import HOLE_TIMEOUT, RETENTION_SECONDS, START_WINDOW, ChangeFeed, ChangeLog


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


# -- database outages ---------------------------------------------------------------------


class _Down:
    """Stands in for ``Database.read`` while the database is away."""

    def __call__(self) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))


def test_failed_poll_changes_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = ChangeFeed(db)
    feed.poll()
    with db.write() as conn:
        changes.record(conn, [5])
    position = (feed.high, dict(feed.holes), feed.last_poll)
    with monkeypatch.context() as m:
        m.setattr(feed.db, "read", _Down())
        with pytest.raises(OperationalError):
            feed.poll()
    assert (feed.high, feed.holes, feed.last_poll) == position
    assert feed.poll() == {5}


def test_unread_log_past_retention_reloads(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed polls do not reset the retention clock: rows may have been pruned meanwhile."""
    feed = ChangeFeed(db)
    feed.poll()
    feed.last_poll -= RETENTION_SECONDS
    with monkeypatch.context() as m:
        m.setattr(feed.db, "read", _Down())
        with pytest.raises(OperationalError):
            feed.poll()
    assert feed.poll() is None


def test_hole_filled_while_polls_failed_past_its_timeout_is_seen(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link cut for longer than HOLE_TIMEOUT: the hole's row committed meanwhile is read
    (before, the hole was let go unread and the worker never saw that change)."""
    feed = ChangeFeed(db)
    feed.poll()
    base, now = feed.high, utcnow()
    with db.write() as conn:
        conn.execute(insert(t.change_log).values(id=base + 2, provider_id=2, created_at=now))
    assert feed.poll() == {2}
    feed.holes[base + 1] -= HOLE_TIMEOUT + 1  # the polls since then failed
    with db.write() as conn:
        conn.execute(insert(t.change_log).values(id=base + 1, provider_id=1, created_at=now))
    assert feed.poll() == {1}
    assert not feed.holes


def test_hole_past_its_timeout_and_still_empty_is_let_go(db: Database) -> None:
    feed = ChangeFeed(db)
    feed.poll()
    base = feed.high
    with db.write() as conn:
        conn.execute(insert(t.change_log).values(id=base + 2, provider_id=2, created_at=utcnow()))
    assert feed.poll() == {2}
    assert feed.poll() == set()
    assert base + 1 in feed.holes
    feed.holes[base + 1] -= HOLE_TIMEOUT + 1
    assert feed.poll() == set()
    assert not feed.holes


def test_lost_position_reloads(db: Database) -> None:
    """The newest row seen is gone (pruned, or a restored database): reload everything."""
    feed = ChangeFeed(db)
    feed.poll()
    with db.write() as conn:
        changes.record(conn, [5])
    assert feed.poll() == {5}
    with db.write() as conn:
        conn.execute(delete(t.change_log).where(t.change_log.c.id == feed.high))
    assert feed.poll() is None
    assert feed.poll() == set()


def test_first_row_after_an_empty_start_opens_a_bounded_window(db: Database) -> None:
    with db.write() as conn:
        conn.execute(delete(t.change_log))
    feed = ChangeFeed(db)
    assert feed.poll() is None
    with db.write() as conn:
        conn.execute(
            insert(t.change_log).values(id=START_WINDOW * 50, provider_id=3, created_at=utcnow())
        )
    assert feed.poll() == {3}
    assert len(feed.holes) == START_WINDOW - 1


def test_prune_keeps_the_newest_row(db: Database) -> None:
    """After a quiet spell longer than the retention, readers keep their position."""
    feed = ChangeFeed(db)
    feed.poll()
    old = utcnow() - datetime.timedelta(seconds=2 * RETENTION_SECONDS)
    with db.write() as conn:
        changes.record(conn, [5, 6])
        conn.execute(update(t.change_log).values(created_at=old))
    assert feed.poll() == {5, 6}
    feed.last_prune = float("-inf")
    feed.poll()  # prunes
    with db.read() as conn:
        left = list(conn.execute(select(t.change_log.c.id)).scalars())
    assert left == [feed.high]
    with db.write() as conn:
        changes.record(conn, [7])
    assert feed.poll() == {7}


def test_any_change_log_table_late_commits_included(db: Database) -> None:
    """The host-state log (uuids as keys, ``at`` as its time) is read the same way."""
    log = ChangeLog(t.scheduler_state_changes, "provider_uuid", at="at")
    feed = ChangeFeed(db, log)
    assert feed.poll() is None
    base = feed.high
    row = {"namespace": "compute", "at": utcnow()}
    with db.write() as conn:
        conn.execute(
            insert(t.scheduler_state_changes).values(id=base + 2, provider_uuid="b", **row)
        )
    assert feed.poll() == {"b"}
    with db.write() as conn:
        conn.execute(
            insert(t.scheduler_state_changes).values(id=base + 1, provider_uuid="a", **row)
        )
    assert feed.poll() == {"a"}
    assert not feed.holes
    with db.write() as conn:  # no key of this log means "reload everything"
        conn.execute(
            insert(t.scheduler_state_changes).values(id=base + 3, provider_uuid="0", **row)
        )
    assert feed.poll() == {"0"}
