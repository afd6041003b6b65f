"""The racing side of test_races: one spawned process's reservations.

Kept apart from the test module so that a spawned process imports only
what it runs (not the test helpers, Falcon and the app).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from berth import metrics
from berth.db.engine import Database
from berth.placement import errors
from berth.placement.write.retry import atomically
from berth.scheduler import quotas
from berth.scheduler.quotas import QuotaExceeded, Scope

ATTEMPTS = 3
# Lost races cannot exhaust this: a reservation loses only to one that
# passed, and no more than the room can pass.
RETRIES = 50


def reserve_one(db: Database, scope: Scope) -> None:
    """One reservation of an instance with 2 VCPU, for an hour, as callers run it."""
    atomically(
        db,
        lambda conn: quotas.reserve(conn, scope, {"VCPU": 2}, ttl_seconds=3600),
        RETRIES,
        operation=quotas.OPERATION,
    )


def race(url: str, index: int, scope: Scope, start: Any, out: Any) -> None:
    """Meet the others at ``start``, try ATTEMPTS reservations, put the outcomes in ``out``."""
    db = Database(url)
    outcomes: Counter[str] = Counter()
    if scope.user_id is None:  # the project's limit: every process its own user
        scope = Scope(scope.project_id, f"u{index}")
    start.wait()
    try:
        for _ in range(ATTEMPTS):
            try:
                reserve_one(db, scope)
                outcomes["reserved"] += 1
            except QuotaExceeded:
                outcomes["exceeded"] += 1
            except errors.ConcurrentUpdate:
                outcomes["gave up"] += 1
    except Exception as exc:  # reported to the parent, which fails the test
        outcomes[f"crash: {type(exc).__name__}: {exc}"] += 1
    finally:
        db.dispose()
    outcomes["lost races"] += int(metrics.WRITE_RETRIES.labels(quotas.OPERATION)._value.get())
    out.put(dict(outcomes))
