"""The racing side of test_races: one spawned process's enqueues.

Kept apart from the test module so that a spawned process imports only
what it runs (not the test helpers, Falcon and the app).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from berth.db.engine import Database
from berth.placement import errors
from berth.placement.write.retry import atomically
from berth.pull import requests
from berth.pull.requests import Order
from berth.scheduler import quotas
from berth.scheduler.quotas import QuotaExceeded

ATTEMPTS = 3
# Lost races cannot exhaust this: an enqueue loses only to one that passed.
RETRIES = 50


def race(url: str, index: int, project: str, start: Any, out: Any) -> None:
    """Meet the others at ``start``, try ATTEMPTS enqueues of one instance, report outcomes."""
    db = Database(url)
    outcomes: Counter[str] = Counter()
    order = Order(flavor="small", count=1, project_id=project, user_id=f"u{index}")
    start.wait()
    try:
        for _ in range(ATTEMPTS):
            try:
                atomically(
                    db,
                    lambda conn: requests.enqueue(conn, order, 3600),
                    RETRIES,
                    operation=quotas.OPERATION,
                )
                outcomes["queued"] += 1
            except QuotaExceeded:
                outcomes["exceeded"] += 1
            except errors.ConcurrentUpdate:
                outcomes["gave up"] += 1
    except Exception as exc:  # reported to the parent, which fails the test
        outcomes[f"crash: {type(exc).__name__}: {exc}"] += 1
    finally:
        db.dispose()
    out.put(dict(outcomes))
