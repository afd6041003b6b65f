"""Run a write transaction again while it loses races: the one retry rule.

A write that lost a generation swap (``ConcurrentUpdate``), a unique-key
race (``IntegrityError``) or hit a transient database error (deadlock,
serialization or Galera certification failure, lock timeout) did nothing
that lasts: it is rolled back and run again.  A generation the *client*
sent that is not current (``StaleGeneration``) is answered at once: running
again cannot help.  :func:`retryable` is that decision, for the group
commit too, which re-queues its jobs itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from berth import metrics
from berth.db.engine import Database, is_transient
from berth.placement import errors

log = structlog.get_logger("berth.placement.write")

T = TypeVar("T")

RETRIES_EXHAUSTED = (
    "Another thread concurrently updated the resource provider data. Please retry your update"
)


def retryable(exc: BaseException) -> bool:
    """True when ``exc`` means a lost race: the transaction is worth running again."""
    if isinstance(exc, errors.StaleGeneration):
        return False
    if isinstance(exc, errors.ConcurrentUpdate | IntegrityError):
        return True
    return isinstance(exc, DBAPIError) and is_transient(exc)


def atomically(
    db: Database, once: Callable[[Connection], T], attempts: int, *, operation: str
) -> T:
    """Run ``once`` in a write transaction, again (up to ``attempts`` in all) while it loses.

    Retries and exhaustion are counted under ``operation``
    (``berth_write_retries`` / ``berth_write_conflicts``); once exhausted
    the answer is ConcurrentUpdate.
    """
    for attempt in range(max(1, attempts)):
        try:
            with db.write() as conn:
                return once(conn)
        except (errors.ConcurrentUpdate, DBAPIError) as exc:
            if not retryable(exc):
                raise
            log.debug(
                "write lost a race, retrying", operation=operation, attempt=attempt, error=str(exc)
            )
        metrics.WRITE_RETRIES.labels(operation).inc()
    log.warning("exceeded retry limit on write", operation=operation, attempts=attempts)
    metrics.WRITE_CONFLICTS.labels(operation).inc()
    raise errors.ConcurrentUpdate(RETRIES_EXHAUSTED)
