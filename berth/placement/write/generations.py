"""The provider generation compare-and-swap: how every write takes its providers.

No row is locked beforehand: a writer reads a provider's generation, does
its work, then swaps it (``SET generation = g + 1 WHERE id = ? AND
generation = g``).  A swap that finds another generation is lost: another
writer got there first, and the caller rolls back (and usually runs again).
Every swap won is recorded in the change feed (:mod:`berth.placement.changes`)
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from sqlalchemy import Connection, DateTime, bindparam, insert, select, tuple_, update

from berth.db.clock import utcnow
from berth.db.lists import one_of
from berth.db.tables import CHANGE_LOG, RP
from berth.placement import changes, errors

GENERATION_CONFLICT = "resource provider generation conflict"


def bump(conn: Connection, provider_id: int, expected: int, times: int = 1) -> int:
    """Swap the provider's generation up from ``expected`` by ``times``; the new one.

    Raises ConcurrentUpdate when another writer changed it first.  On
    PostgreSQL the swap and its change-feed row are one statement.
    """
    if not _bump(conn, provider_id, expected, times):
        raise errors.ConcurrentUpdate(GENERATION_CONFLICT)
    return expected + times


def _bump(conn: Connection, provider_id: int, expected: int, times: int = 1) -> bool:
    """:func:`bump`; False (nothing changed) when the swap was lost."""
    params = {"id_": provider_id, "expected": expected, "times": times, "now": utcnow()}
    if conn.dialect.name == "postgresql":
        return conn.execute(_SWAP_AND_RECORD, params).first() is not None
    if conn.execute(_SWAP_ONE, params).rowcount != 1:
        return False
    changes.record(conn, [provider_id])
    return True


def bump_all(
    conn: Connection, expected: Mapping[int, int], times: Mapping[int, int] | None = None
) -> None:
    """:func:`bump` every provider (id -> expected generation), in id order (no lock cycles)."""
    for provider_id in sorted(expected):
        bump(conn, provider_id, expected[provider_id], (times or {}).get(provider_id, 1))


def bump_all_judged(
    conn: Connection,
    expected: Mapping[int, int],
    judge_again: Callable[[set[int]], dict[int, int]],
    rounds: int,
) -> None:
    """:func:`bump_all`, a lost swap tried again in the same transaction.

    A swap is lost when another writer committed first: this transaction
    now sees that writer's rows, so ``judge_again(ids)`` reads the providers
    not swapped yet again, judges the write against them (raising its
    refusal) and returns their generations as read.  The swaps won stay
    won (their rows stay locked, in id order).  After ``rounds`` lost
    rounds: ConcurrentUpdate.
    """
    pending = dict(expected)
    for round_ in range(max(1, rounds)):
        for provider_id in sorted(pending):
            if not _bump(conn, provider_id, pending[provider_id]):
                break
            del pending[provider_id]
        if not pending:
            return
        if round_ + 1 < rounds:
            pending = judge_again(set(pending))
    raise errors.ConcurrentUpdate(GENERATION_CONFLICT)


def swap(conn: Connection, expected: Mapping[int, int]) -> set[int]:
    """Swap several providers' generations (id -> expected); the ids swapped.

    One ``UPDATE ... WHERE (id, generation) IN (...) RETURNING id`` where the
    database returns updated rows (PostgreSQL, SQLite), else one statement
    per provider, in id order (MariaDB, MySQL).  Lost swaps change nothing.
    """
    if not expected:
        return set()
    if conn.dialect.update_returning:
        result = conn.execute(_SWAP_MANY, {"pairs": sorted(expected.items()), "now": utcnow()})
        swapped = set(result.scalars())
    else:
        swapped = {pid for pid in sorted(expected) if _swap_one(conn, pid, expected[pid])}
    changes.record(conn, swapped)
    return swapped


def advance(conn: Connection, provider_ids: Collection[int]) -> None:
    """Move the providers' generations on, whatever they are now (and record the change).

    For a writer that judged nothing by the generation but changes what
    others judge by it (berth's host attributes): a writer that read the
    old generation loses its swap, and one that swapped first is waited for.
    """
    if not provider_ids:
        return
    ids = sorted(set(provider_ids))
    conn.execute(_ADVANCE, {"ids": ids, "now": utcnow()})
    changes.record(conn, ids)


def _swap_one(conn: Connection, provider_id: int, expected: int) -> bool:
    params = {"id_": provider_id, "expected": expected, "times": 1, "now": utcnow()}
    return bool(conn.execute(_SWAP_ONE, params).rowcount == 1)


# Built once: a statement object reused is not analysed again on every call.
_SWAP_ONE = (
    update(RP)
    .where(RP.c.id == bindparam("id_"), RP.c.generation == bindparam("expected"))
    .values(generation=RP.c.generation + bindparam("times"), updated_at=bindparam("now"))
)
# PostgreSQL: the swap, and the change-feed row only if it was won.
_SWAPPED = _SWAP_ONE.returning(RP.c.id).cte("swapped")
_SWAP_AND_RECORD = (
    insert(CHANGE_LOG)
    .from_select(
        ["provider_id", "created_at"],
        select(_SWAPPED.c.id, bindparam("now", type_=DateTime())),
    )
    .returning(CHANGE_LOG.c.provider_id)
)
_ADVANCE = (
    update(RP)
    .where(one_of(RP.c.id, "ids"))
    .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
)
_SWAP_MANY = (
    update(RP)
    .where(tuple_(RP.c.id, RP.c.generation).in_(bindparam("pairs", expanding=True)))
    .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
    .returning(RP.c.id)
)
