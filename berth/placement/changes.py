"""Writers' side of the change feed: note which providers a transaction touched."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, DateTime, bindparam, insert

from berth.db.arrays import insert_from_arrays
from berth.db.clock import utcnow
from berth.db.tables import CHANGE_LOG

EVERYTHING = 0


def record(conn: Connection, provider_ids: Iterable[int]) -> None:
    """Append the touched providers to the change log, in the caller's transaction."""
    now = utcnow()
    ids = sorted(set(provider_ids))
    if len(ids) > 1 and conn.dialect.name == "postgresql":
        conn.execute(_FROM_ARRAYS, {"provider_id": ids, "now": now})
        return
    rows = [{"provider_id": pid, "created_at": now} for pid in ids]
    if rows:
        conn.execute(_INSERT, rows)


_INSERT = insert(CHANGE_LOG)  # built once: reused, it is not analysed again per call
_FROM_ARRAYS = insert_from_arrays(
    CHANGE_LOG, ("provider_id",), {"created_at": bindparam("now", type_=DateTime())}
)
