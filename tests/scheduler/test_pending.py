"""This worker's pending claims: counted until a refresh that started after them has run."""

from __future__ import annotations

from berth.scheduler.pending import PendingClaims


def test_counts_until_a_later_refresh_reads_them() -> None:
    pending = PendingClaims()
    pending.add({(1, 0): 2})
    pending.add({(1, 0): 3, (2, 0): 1})
    assert pending.snapshot() == {(1, 0): 5, (2, 0): 1}
    late: list[int] = []

    def refresh() -> None:
        # A claim committed while the refresh runs may or may not have been read: kept.
        pending.add({(3, 0): 7})
        late.append(1)

    pending.refresh(0.0, refresh)
    assert late == [1]
    assert pending.snapshot() == {(3, 0): 7}


def test_interval_and_invalidate() -> None:
    pending = PendingClaims()
    calls: list[int] = []
    pending.refresh(60.0, lambda: calls.append(1))
    pending.refresh(60.0, lambda: calls.append(2))  # within the interval: skipped
    assert calls == [1]
    pending.invalidate()  # a refused claim: the next request refreshes
    pending.refresh(60.0, lambda: calls.append(3))
    assert calls == [1, 3]


def test_reservations_in_flight_outlive_a_refresh_and_refused_ones_vanish() -> None:
    pending = PendingClaims()
    kept, refused, flying = pending.reserve([{(1, 0): 2}, {(1, 0): 3}, {(2, 0): 4}])
    assert pending.snapshot() == {(1, 0): 5, (2, 0): 4}
    pending.settle(refused, committed=False)
    pending.settle(kept, committed=True)
    assert pending.snapshot() == {(1, 0): 2, (2, 0): 4}
    pending.refresh(0.0, lambda: None)  # read the committed claim; the other is not committed
    assert pending.snapshot() == {(2, 0): 4}
    pending.settle(flying, committed=True)  # committed after that refresh started: still held
    assert pending.snapshot() == {(2, 0): 4}
    pending.refresh(0.0, lambda: None)
    assert pending.snapshot() == {}
