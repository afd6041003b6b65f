"""This worker's reservations: counted until a refresh that started after them has run."""

from __future__ import annotations

from berth.scheduler.reservations import Reservations


def test_counts_until_a_later_refresh_reads_them() -> None:
    book = Reservations()
    book.add({(1, 0): 2})
    book.add({(1, 0): 3, (2, 0): 1})
    assert book.snapshot() == {(1, 0): 5, (2, 0): 1}
    late: list[int] = []

    def refresh() -> bool:
        # A claim committed while the refresh runs may or may not have been read: kept.
        book.add({(3, 0): 7})
        late.append(1)
        return True

    book.refresh(0.0, refresh)
    assert late == [1]
    assert book.snapshot() == {(3, 0): 7}


def test_a_refresh_that_did_not_run_forgets_nothing() -> None:
    """Another thread's refresh was under way (``refresh_if_idle`` said no): the
    committed claims stay counted, and the next request tries again."""
    book = Reservations()
    book.add({(1, 0): 2})
    book.refresh(60.0, lambda: False)
    assert book.snapshot() == {(1, 0): 2}
    book.refresh(60.0, lambda: True)
    assert book.snapshot() == {}


def test_interval_and_invalidate() -> None:
    book = Reservations()
    calls: list[int] = []
    book.refresh(60.0, lambda: bool(calls.append(1)) or True)
    book.refresh(60.0, lambda: bool(calls.append(2)) or True)  # within the interval: skipped
    assert calls == [1]
    book.invalidate()  # a refused claim: the next request refreshes
    book.refresh(60.0, lambda: bool(calls.append(3)) or True)
    assert calls == [1, 3]


def test_reservations_in_flight_outlive_a_refresh_and_refused_ones_vanish() -> None:
    book = Reservations()
    kept, refused, flying = book.reserve([{(1, 0): 2}, {(1, 0): 3}, {(2, 0): 4}])
    assert book.snapshot() == {(1, 0): 5, (2, 0): 4}
    book.settle(refused, committed=False)
    book.settle(kept, committed=True)
    assert book.snapshot() == {(1, 0): 2, (2, 0): 4}
    book.refresh(0.0, lambda: True)  # read the committed claim; the other is not committed
    assert book.snapshot() == {(2, 0): 4}
    book.settle(flying, committed=True)  # committed after that refresh started: still held
    assert book.snapshot() == {(2, 0): 4}
    book.refresh(0.0, lambda: True)
    assert book.snapshot() == {}
