"""Operator endpoints outside the Placement API: health and metrics.

``/healthcheck`` (liveness) and ``/healthcheck/ready`` (the database answers
and the schema is current) need no token, like ``GET /``, so load balancers
can probe them; ``/metrics`` serves Prometheus text.
"""

from __future__ import annotations

import falcon
from sqlalchemy import text

from berth import metrics
from berth.api.util import ctx, send_json
from berth.db import migrate


def live(req: falcon.Request, resp: falcon.Response) -> None:
    """The process is up and answering."""
    send_json(resp, {"status": "ok"})


def ready(req: falcon.Request, resp: falcon.Response) -> None:
    """The database answers and its schema is at the newest revision."""
    db = ctx(req).services.db
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.current_revision(db)
    except Exception as exc:  # any driver error means "not ready"
        send_json(resp, {"status": "unavailable", "reason": f"database: {exc}"}, status=503)
        return
    head = migrate.head_revision()
    if current != head:
        reason = f"schema at {current}, newest is {head}: run berth db upgrade"
        send_json(resp, {"status": "unavailable", "reason": reason}, status=503)
        return
    send_json(resp, {"status": "ok", "database": db.dialect, "schema": current})


def prometheus(req: falcon.Request, resp: falcon.Response) -> None:
    """Prometheus exposition of every worker's metrics."""
    body, content_type = metrics.render()
    resp.status = 200
    resp.content_type = content_type
    resp.data = body
