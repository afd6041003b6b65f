"""The ``pg_notify`` backend: PostgreSQL ``NOTIFY`` after each commit, ``LISTEN`` in each worker.

Writers send one ``pg_notify(channel, change)`` per change on a pooled
connection of the database, after their transaction committed.  A change
whose wire form is larger than a notification may be (8000 bytes) goes as
its key alone, a wake-up: the worker reads the logs at its next refresh.
Each worker's listener holds one connection of its own (not from the pool),
``LISTEN``\\ s, and waits on it for notifications, checking it with a
``SELECT 1`` every :data:`POLL_S`; a connection the server ended (a restart,
``pg_terminate_backend``) fails there, and the listener reconnects.

PostgreSQL keeps nothing for a session that was not listening when a
notification was sent: a worker that reconnects catches up by reading the
change logs once (the new epoch), as every backend does.  Refused on any
other database (there is no ``NOTIFY``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
import structlog
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from berth.db.engine import Database
from berth.sync.changes import Change, decode
from berth.sync.protocol import ListeningSync

log = structlog.get_logger("berth.sync.pg_notify")

# PostgreSQL refuses payloads of 8000 bytes or more.
PAYLOAD_LIMIT = 7999
POLL_S = 0.5
CONNECT_TIMEOUT_S = 2

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def conninfo(url: str) -> str:
    """A libpq URI from a SQLAlchemy or libpq PostgreSQL URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"pg_notify needs a PostgreSQL URL, not {parsed.drivername}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class PgNotifySync(ListeningSync):
    """LISTEN/NOTIFY over the service's PostgreSQL database (module docstring)."""

    name = "pg_notify"

    def __init__(self, db: Database, url: str = "", channel: str = "berth_host_state") -> None:
        if db.dialect != "postgresql":
            raise ValueError(
                "host_state_sync = pg_notify needs a PostgreSQL database "
                f"(LISTEN/NOTIFY), and this one is {db.dialect}: choose db, redis, nats "
                "or memcached"
            )
        super().__init__()
        self.db = db
        self.channel = channel
        self.conninfo = conninfo(url or db.url)
        self.backend_pid: int | None = None  # of the listening session (tests end it)

    def send(self, changes: Sequence[Change]) -> None:
        """One notification per change, on a pooled connection, in one transaction."""
        params = [{"channel": self.channel, "payload": _payload(c)} for c in changes]
        with self.db.write() as conn:
            conn.execute(_NOTIFY, params)

    def listen(self, stop: threading.Event) -> None:
        """LISTEN on a connection of its own; deliver each notification as it comes."""
        with psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=1,
            keepalives_count=3,
        ) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.backend_pid = conn.info.backend_pid
            self.joined()
            while not stop.is_set():
                for notification in conn.notifies(timeout=POLL_S):
                    try:
                        self.deliver([decode(notification.payload)])
                    except ValueError as exc:
                        log.warning("not a host state change", error=str(exc))
                    if stop.is_set():
                        break
                conn.execute("SELECT 1")  # a session the server ended fails here


def _payload(change: Change) -> str:
    """The change's wire form, or its key alone when that is too large for a notification."""
    data = change.encode()
    if len(data) > PAYLOAD_LIMIT:
        data = change.keys_only().encode()
    return data.decode()
