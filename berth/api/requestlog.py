"""One structured log line per request.

The line is written when the response is ready, by the outermost middleware,
so it sees the final status (errors included), the caller as the auth
middleware saw it, and berth's request id (the ``x-openstack-request-id``
response header).  A caller's own request id (Nova sends one in the same
header) is logged as ``global_request_id`` so one operation can be followed
across services.  Health checks and metric scrapes are logged at DEBUG: load
balancers and Prometheus call them every few seconds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon
import structlog

log = structlog.get_logger("berth.request")

QUIET_PATHS = frozenset({"/healthcheck", "/healthcheck/ready", "/metrics"})


def request_fields(req: falcon.Request, resp: falcon.Response) -> dict[str, Any]:
    """The facts logged for one answered request."""
    context = req.context
    credentials = getattr(context, "credentials", None)
    version = getattr(context, "version", None)
    started = getattr(context, "log_started", None)
    elapsed = time.perf_counter() - started if started is not None else 0.0
    fields: dict[str, Any] = {
        "method": req.method,
        "route": req.uri_template or "unmatched",
        "path": req.path,
        "status": int(str(resp.status).split()[0]),
        "duration_ms": round(elapsed * 1000, 3),
        "request_id": getattr(context, "request_id", None) or None,
        "user_id": getattr(credentials, "user_id", None),
        "project_id": getattr(credentials, "project_id", None),
        "microversion": str(version) if version is not None else None,
        "remote_addr": req.remote_addr,
    }
    if req.query_string:
        fields["query"] = req.query_string
    inbound = req.get_header("x-openstack-request-id")
    if inbound:
        fields["global_request_id"] = inbound
    return fields


class RequestLog:
    """Falcon middleware writing the request line (install it first)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Note when the request arrived."""
        req.context.log_started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, succeeded: bool
    ) -> None:
        """Write one line: method, route, status, duration, request id, caller."""
        fields = request_fields(req, resp)
        level = logging.DEBUG if req.path in QUIET_PATHS else logging.INFO
        log.log(level, "request", **fields)
