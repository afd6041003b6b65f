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
notification channel (tests give each its own).  docs/scheduler.md says what
each guarantees, how long it keeps changes, and how a worker catches up.
"""

from __future__ import annotations

from collections.abc import Callable

from berth.db.engine import Database
from berth.sync.protocol import StateSync

CHANNEL = "berth_host_state"

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


def open_sync(name: str, url: str, db: Database, channel: str = CHANNEL) -> StateSync:
    """The backend ``name`` over ``url`` (empty: its default); ValueError for an unknown
    name, or pg_notify over another database than PostgreSQL."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"host_state_sync must be one of {', '.join(NAMES)}, not {name!r}")
    return factory(url, db, channel)
