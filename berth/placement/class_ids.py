"""Resource class names and ids, read once per transaction."""

from __future__ import annotations

from sqlalchemy import Connection, select

from berth.db.tables import RC
from berth.placement import errors


class ResourceClassCache:
    """Name <-> id of resource classes, read once per transaction."""

    def __init__(self, conn: Connection) -> None:
        rows = conn.execute(select(RC.c.id, RC.c.name)).all()
        self.by_name: dict[str, int] = {r.name: r.id for r in rows}
        self.by_id: dict[int, str] = {r.id: r.name for r in rows}

    def id_of(self, name: str) -> int:
        """The id of class ``name``; NotFound when it does not exist."""
        try:
            return self.by_name[name]
        except KeyError:
            raise errors.NotFound(f"No such resource class {name}.") from None

    def name_of(self, rc_id: int) -> str:
        """The name of class ``rc_id``."""
        return self.by_id[rc_id]
