"""Changes on the wire, and the ledger's rules (no database but a feed's position)."""

from __future__ import annotations

import datetime

import pytest

from berth.db.engine import Database
from berth.scheduler.hoststate import STATE_LOG
from berth.sync.changes import Change, aggregate_change, decode, host_change
from berth.sync.feed import ChangeFeed
from berth.sync.ledger import Ledger

AT = datetime.datetime(2026, 12, 3, 10, 15, 2)


@pytest.mark.parametrize(
    "change",
    [
        host_change(7, "h1", "compute", 3, AT, {"metrics": {"cpu": 1.5}}),
        host_change(8, "h1", "net", 0, AT, None),
        aggregate_change(9, "a1", {"availability_zone": "az1"}),
        host_change(10, "h1", "compute", 4, AT, {"x": 1}).keys_only(),
        Change("h", 0, "h2", carried=False),
    ],
)
def test_a_change_survives_the_wire(change: Change) -> None:
    assert decode(change.encode()) == change


@pytest.mark.parametrize("data", [b"", b"{}", b'{"k": "z", "i": 1, "u": "x"}', b"[1]", b"{"])
def test_what_is_not_a_change_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


def _ledger(sqlite_db: Database, high: int, holes: set[int]) -> Ledger:
    feed = ChangeFeed(sqlite_db, STATE_LOG, high=high, holes=dict.fromkeys(holes, 0.0))
    ledger = Ledger(feed)
    ledger.reloaded()
    return ledger


# (what the ledger held, a pushed change's key and id, applied?)
ACCEPT = [
    ({}, ("h", "ns"), 11, True),  # after the full load's position
    ({}, ("h", "ns"), 10, False),  # at or before it: the load has it
    ({}, ("h", "ns"), 5, True),  # a hole: in flight during the load
    ({("h", "ns"): 12}, ("h", "ns"), 12, False),  # held already
    ({("h", "ns"): 12}, ("h", "ns"), 11, False),  # older than held
    ({("h", "ns"): 12}, ("h", "ns"), 13, True),
    ({("h", "ns"): 12}, ("h", "other"), 11, True),  # another namespace of the host
]


@pytest.mark.parametrize(("held", "key", "change_id", "applied"), ACCEPT)
def test_what_a_ledger_accepts(
    sqlite_db: Database, held: dict, key: tuple[str, str], change_id: int, applied: bool
) -> None:
    ledger = _ledger(sqlite_db, 10, {5})
    ledger.versions.update(held)
    assert ledger.accept(key, change_id) is applied
    assert (change_id in ledger.delivered) is applied


def test_the_log_reader_skips_what_was_pushed_and_forgets_it(sqlite_db: Database) -> None:
    ledger = _ledger(sqlite_db, 10, {5})
    assert ledger.accept(("h1", "ns"), 11) and ledger.accept(("h2", "ns"), 12)
    ledger.feed.high = 12
    assert ledger.unseen([(11, "h1"), (12, "h2"), (13, "h3"), (14, "h3")]) == {"h3": 14}
    assert ledger.delivered == set()


def test_a_key_read_from_the_database_refuses_older_pushes(sqlite_db: Database) -> None:
    ledger = _ledger(sqlite_db, 10, set())
    ledger.mark(("h1", "ns"), 20)
    assert not ledger.accept(("h1", "ns"), 19)
    assert ledger.accept(("h1", "ns"), 21)
