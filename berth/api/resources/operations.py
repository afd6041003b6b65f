"""Operator endpoints outside the Placement API: health and metrics.

``/healthcheck`` (liveness) and ``/healthcheck/ready`` (the database answers
and the schema is current) need no token, like ``GET /``, so load balancers
can probe them; ``/metrics`` serves Prometheus text.  Readiness answers 503
with Retry-After while the database is unavailable (within the connect
timeout), and names the worker process that answered.
"""

from __future__ import annotations

import os

import falcon
from sqlalchemy import text

from berth import metrics
from berth.api.util import ctx, send_json
from berth.db import migrate
from berth.db.engine import unavailable


def live(req: falcon.Request, resp: falcon.Response) -> None:
    """The process is up and answering."""
    send_json(resp, {"status": "ok"})


def ready(req: falcon.Request, resp: falcon.Response) -> None:
    """The database answers and its schema is at the newest revision."""
    services = ctx(req).services
    db = services.db
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.current_revision(db)
    except Exception as exc:  # any driver error means "not ready"
        why = unavailable(exc) or type(exc).__name__
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = f"database: {why}: {detail[0] if detail else ''}"
        send_json(resp, {"status": "unavailable", "reason": reason}, status=503)
        resp.set_header("Retry-After", str(services.settings.database_retry_after))
        return
    head = services.schema_head
    if current != head:
        reason = f"schema at {current}, newest is {head}: run berth db upgrade"
        send_json(resp, {"status": "unavailable", "reason": reason}, status=503)
        return
    send_json(
        resp, {"status": "ok", "database": db.dialect, "schema": current, "worker": os.getpid()}
    )


def prometheus(req: falcon.Request, resp: falcon.Response) -> None:
    """Prometheus exposition of every worker's metrics."""
    body, content_type = metrics.render()
    resp.status = 200
    resp.content_type = content_type
    resp.data = body
