"""The provider generation compare-and-swap: how every write takes its providers.

No row is locked beforehand: a writer reads a provider's generation, does
its work, then swaps it (``SET generation = g + 1 WHERE id = ? AND
generation = g``).  A swap that finds another generation is lost: another
writer got there first, and the caller rolls back (and usually runs again).
Every swap won is recorded in the change feed (:mod:`berth.placement.changes`)
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import Connection, bindparam, tuple_, update

from berth.db.clock import utcnow
from berth.db.tables import RP
from berth.placement import changes, errors

GENERATION_CONFLICT = "resource provider generation conflict"


def bump(conn: Connection, provider_id: int, expected: int, times: int = 1) -> int:
    """Swap the provider's generation up from ``expected``, ``times`` times; the new one.

    Raises ConcurrentUpdate when another writer changed it first.
    """
    for _ in range(times):
        if not _swap_one(conn, provider_id, expected):
            raise errors.ConcurrentUpdate(GENERATION_CONFLICT)
        changes.record(conn, [provider_id])
        expected += 1
    return expected


def bump_all(
    conn: Connection, expected: Mapping[int, int], times: Mapping[int, int] | None = None
) -> None:
    """:func:`bump` every provider (id -> expected generation), in id order (no lock cycles)."""
    for provider_id in sorted(expected):
        bump(conn, provider_id, expected[provider_id], (times or {}).get(provider_id, 1))


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
    result = conn.execute(_SWAP_ONE, {"id_": provider_id, "expected": expected, "now": utcnow()})
    return bool(result.rowcount == 1)


# Built once: a statement object reused is not analysed again on every call.
_SWAP_ONE = (
    update(RP)
    .where(RP.c.id == bindparam("id_"), RP.c.generation == bindparam("expected"))
    .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
)
_ADVANCE = (
    update(RP)
    .where(RP.c.id.in_(bindparam("ids", expanding=True)))
    .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
)
_SWAP_MANY = (
    update(RP)
    .where(tuple_(RP.c.id, RP.c.generation).in_(bindparam("pairs", expanding=True)))
    .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
    .returning(RP.c.id)
)
