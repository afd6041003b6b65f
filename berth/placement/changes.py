"""Writers' side of the change feed: note which providers a transaction touched."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, insert

from berth.db import tables as t
from berth.placement.lookups import utcnow

EVERYTHING = 0


def record(conn: Connection, provider_ids: Iterable[int]) -> None:
    """Append the touched providers to the change log, in the caller's transaction."""
    now = utcnow()
    rows = [{"provider_id": pid, "created_at": now} for pid in sorted(set(provider_ids))]
    if rows:
        conn.execute(insert(t.change_log), rows)
