"""The long-lived objects a worker process shares across requests.

:class:`Services` owns them: the settings, the database, the policy
enforcer, the rules host state is judged by (its namespaces' JSON Schemas,
read when the services are built, so a bad schema stops the process at
start), and, built on first use, the in-memory candidates index, the
scheduler pipeline over that database, the host-state sync backend
(``host_state_sync``: writers publish to it, the pipeline's host catalog
listens to it), and pull dispatch's NATS connection and sweeper thread
(:class:`berth.pull.runtime.Pull`).  Whoever builds a ``Services``
(the WSGI entry point once per worker process, the CLI, a benchmark, a test
fixture) decides their lifetime and ends it with :meth:`Services.close`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from berth import metrics
from berth.candidates.index import MemoryIndex
from berth.db import migrate
from berth.db.engine import Database, Timeouts
from berth.policy import Enforcer, load_overrides
from berth.scheduler.namespaces import StateRules
from berth.scheduler.pipeline import Pipeline
from berth.scheduler.pipeline import build as build_pipeline
from berth.settings import Settings
from berth.sync.backends import open_sync
from berth.sync.changes import Change
from berth.sync.protocol import StateSync

if TYPE_CHECKING:  # imported when first used: NATS' client is a second's import
    from berth.pull.runtime import Pull

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built on first use by one thread, shared by all; built again in a forked child."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._built: tuple[int, T] | None = None

    def get(self) -> T:
        """The value of this process (built now if it is not yet)."""
        built = self._built
        if built is None or built[0] != os.getpid():
            with self._lock:
                built = self._built
                if built is None or built[0] != os.getpid():
                    built = self._built = (os.getpid(), self._build())
        return built[1]

    def peek(self) -> T | None:
        """The value if this process built it, else None (nothing is built)."""
        built = self._built
        return built[1] if built is not None and built[0] == os.getpid() else None

    def drop(self) -> None:
        """Forget the value (the next :meth:`get` builds a new one)."""
        with self._lock:
            self._built = None


def timeouts(settings: Settings) -> Timeouts:
    """The database time limits of a serving process, from its settings."""
    return Timeouts(
        connect=settings.database_connect_timeout,
        lock=settings.database_lock_timeout,
        statement=settings.database_statement_timeout,
        pool=settings.database_pool_timeout,
        network=settings.database_network_timeout,
        ping_after=settings.database_ping_after,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


@dataclass(eq=False)
class Services:
    """Settings, the database, the policy enforcer, and what this process builds over them."""

    settings: Settings
    db: Database
    enforcer: Enforcer
    state_rules: StateRules = field(init=False, repr=False)
    _index: Lazy[MemoryIndex] = field(init=False, repr=False)
    _pipeline: Lazy[Pipeline] = field(init=False, repr=False)
    _pull: Lazy[Pull] = field(init=False, repr=False)
    _sync: Lazy[StateSync] = field(init=False, repr=False)
    _schema_head: Lazy[str | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.state_rules = StateRules.from_settings(self.settings)
        self._index = Lazy(lambda: MemoryIndex(self.db))
        self._pipeline = Lazy(
            lambda: build_pipeline(self.settings, self.db, self.candidates_index, self.host_sync)
        )
        self._sync = Lazy(
            lambda: open_sync(
                self.settings.host_state_sync, self.settings.host_state_sync_target, self.db
            )
        )
        self._pull = Lazy(self._start_pull)
        self._schema_head = Lazy(migrate.head_revision)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build the services a worker needs from its settings."""
        db = Database(settings.effective_database_url, timeouts(settings))
        metrics.instrument_pool(db.engine)
        return cls(
            settings=settings,
            db=db,
            enforcer=Enforcer(
                enforce_new_defaults=settings.enforce_new_defaults,
                overrides=load_overrides(settings.policy_file),
            ),
        )

    @property
    def candidates_index(self) -> MemoryIndex:
        """The in-memory provider index over ``db`` (created empty; its first refresh loads it)."""
        return self._index.get()

    @property
    def scheduler_pipeline(self) -> Pipeline:
        """The scheduler's stages, wired from the settings over :attr:`candidates_index`."""
        return self._pipeline.get()

    @property
    def host_sync(self) -> StateSync:
        """This process's host-state sync backend (built on first use; a forked child builds
        its own, with its own connections and listener)."""
        return self._sync.get()

    def publish(self, changes: list[Change]) -> None:
        """Hand a committed write's changes to the sync backend (never fails the write)."""
        if changes:
            self.host_sync.publish(changes)

    @property
    def schema_head(self) -> str | None:
        """The newest schema revision this code ships (read from the migration scripts once)."""
        return self._schema_head.get()

    @property
    def pull(self) -> Pull:
        """Pull dispatch in this process: its NATS connection and sweeper (built on first
        use; a forked child builds its own)."""
        return self._pull.get()

    def _start_pull(self) -> Pull:
        from berth.pull.runtime import Pull

        return Pull(self.db, self.settings)

    def close(self) -> None:
        """Stop pull dispatch's sweeper and NATS connection and the host-state sync, drop the
        index and the pipeline and close the database's pooled connections."""
        pull = self._pull.peek()
        if pull is not None:
            pull.close()
        self._pull.drop()
        sync = self._sync.peek()
        if sync is not None:
            sync.close()
        self._sync.drop()
        self._pipeline.drop()
        self._index.drop()
        self.db.dispose()
