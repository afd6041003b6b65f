"""Host-state sync backends, one module each, chosen by name (``host_state_sync``).

=============  ==============================================================
``db``         nothing pushed: workers poll the change logs (the default)
``pg_notify``  PostgreSQL ``NOTIFY`` to the workers' ``LISTEN`` (PostgreSQL only)
``redis``      a Redis stream: ``XADD ... MAXLEN ~``, each worker ``XREAD``\\ s
``nats``       a NATS JetStream key-value bucket, each worker watching it
``memcached``  a counter and one item per change, each worker polling them
=============  ==============================================================

:data:`FACTORIES` maps each name to a function that imports its module (the
client libraries of Redis and memcached are the ``sync`` extra) and builds
the backend over ``url`` (empty: the backend's default), the process's
database and a ``channel``, the name of the stream, bucket, key prefix or
notification channel.  The channel is named after the database
(:func:`channel_for`: its name, a SQLite file's path), so deployments (and
test sessions) sharing one Redis, NATS or memcached server stay apart while
every berth host of one deployment meets on it, whatever address it reaches
the database by.  docs/scheduler.md says what
each guarantees, how long it keeps changes, and how a worker catches up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy.engine import make_url

from berth.db.engine import Database
from berth.sync.protocol import StateSync


def channel_for(db: Database) -> str:
    """The channel of ``db``'s changes: ``berth_hs_`` and a digest of the database's name
    (of the file's path for SQLite), in the characters every backend takes."""
    parsed = make_url(db.url)
    name = parsed.database or ""
    identity = f"{parsed.get_backend_name()}:{name}"
    return "berth_hs_" + hashlib.sha1(identity.encode()).hexdigest()[:12]


Factory = Callable[[str, Database, str], StateSync]


def _db(url: str, db: Database, channel: str) -> StateSync:
    from berth.sync.backends.db import DbSync

    return DbSync()


def _pg_notify(url: str, db: Database, channel: str) -> StateSync:
    from berth.sync.backends.pg_notify import PgNotifySync

    return PgNotifySync(db, url, channel)


def _redis(url: str, db: Database, channel: str) -> StateSync:
    from berth.sync.backends.redis import RedisSync

    return RedisSync(url, channel)


def _nats(url: str, db: Database, channel: str) -> StateSync:
    from berth.sync.backends.nats import NatsSync

    return NatsSync(url, channel)


def _memcached(url: str, db: Database, channel: str) -> StateSync:
    from berth.sync.backends.memcached import MemcachedSync

    return MemcachedSync(url, channel)


FACTORIES: dict[str, Factory] = {
    "db": _db,
    "pg_notify": _pg_notify,
    "redis": _redis,
    "nats": _nats,
    "memcached": _memcached,
}
NAMES = tuple(FACTORIES)


def open_sync(name: str, url: str, db: Database, channel: str | None = None) -> StateSync:
    """The backend ``name`` over ``url`` (empty: its default) on ``channel`` (None: the
    database's, :func:`channel_for`); ValueError for an unknown name, or pg_notify over
    another database than PostgreSQL."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"host_state_sync must be one of {', '.join(NAMES)}, not {name!r}")
    return factory(url, db, channel if channel is not None else channel_for(db))
