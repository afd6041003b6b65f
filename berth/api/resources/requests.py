"""``/scheduler/requests``: clients' pull-dispatch requests (scheduler 1.2; docs/pull.md).

POST reserves quota and queues the instances (202: hosts will claim them),
GET shows each instance's state, DELETE deletes them.  The domain is
:mod:`berth.pull.requests`; what follows a commit (publishing) is the
process's :class:`~berth.pull.runtime.Pull`, which never fails the request:
a message NATS could not take is sent later by the sweeper.  Policy rules
are ``berth:scheduler:requests:<action>``.
"""

from __future__ import annotations

import falcon

from berth.api.errors import detail_text
from berth.api.resources.scheduler import read, send_json, start
from berth.api.util import ctx, extract_json, write
from berth.pull import requests
from berth.pull.model import reservation_ttl
from berth.pull.requests import Order
from berth.scheduler import quotas
from berth.schemas import scheduler as schemas
from berth.schemas import versioned

SINCE = (1, 2)
OPERATION = "pull_requests"


def create(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/requests: 202 with the request's uuid and its instances' uuids."""
    version = start(req, "requests:create", SINCE)
    body = extract_json(req, versioned(schemas.REQUEST, version))
    order = Order(
        flavor=body["flavor"],
        count=body.get("count", 1),
        project_id=body["project_id"],
        user_id=body["user_id"],
        server_group=body.get("server_group"),
        capabilities=frozenset(body.get("capabilities") or ()),
    )
    services = ctx(req).services
    services.pull.first_use()  # the queues in NATS, once per process
    ttl = reservation_ttl(services.settings)
    try:
        done = write(
            req, lambda conn: requests.enqueue(conn, order, ttl), operation=quotas.OPERATION
        )
    except quotas.QuotaExceeded as exc:
        _over_quota(req, resp, exc)
        return
    services.pull.enqueued(done)
    send_json(resp, done.as_body(), status=202)


def _over_quota(req: falcon.Request, resp: falcon.Response, exc: quotas.QuotaExceeded) -> None:
    """409 berth.scheduler.quota_exceeded, every broken limit beside the message."""
    error = {
        "status": 409,
        "title": "Conflict",
        "detail": detail_text(409, exc.message),
        "code": exc.code,
        "request_id": ctx(req).request_id,
    }
    excesses = [e.as_body() for e in exc.excesses]
    send_json(resp, {"errors": [error], "excesses": excesses}, status=409)


def show(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /scheduler/requests/{uuid}: the request and each instance's state, host, reason."""
    send_json(resp, read(req, "requests:show", lambda conn: requests.show(conn, uuid), SINCE))


def delete(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """DELETE /scheduler/requests/{uuid}: 202 with the request as it is now."""
    start(req, "requests:delete", SINCE)
    services = ctx(req).services
    placed = write(req, lambda conn: requests.delete(conn, uuid), operation=OPERATION)
    services.pull.deleting(placed)
    with services.db.read() as conn:
        send_json(resp, requests.show(conn, uuid), status=202)
