"""``/scheduler/flavors``: flavors as berth data (scheduler 1.1 and later).

Below ``scheduler 1.1`` the routes are not there (404, before the policy
is asked, as Placement does for a route newer than the asked microversion).
Policy rules are ``berth:scheduler:flavors:<action>``.
"""

from __future__ import annotations

import falcon

from berth.api.resources.scheduler import _write, read, send_json, start
from berth.api.util import ctx, extract_json, send_empty
from berth.scheduler import flavors
from berth.schemas import scheduler as schemas
from berth.schemas import versioned

SINCE = (1, 1)


def list_flavors(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /scheduler/flavors: every flavor, oldest first."""
    found = read(req, "flavors:list", flavors.list_flavors, SINCE)
    send_json(resp, {"flavors": [flavor.as_body() for flavor in found]})


def create(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/flavors: 201 with the new flavor and its location."""
    version = start(req, "flavors:create", SINCE)
    flavor = flavors.from_body(extract_json(req, versioned(schemas.FLAVOR, version)))
    made = _write(req, lambda conn: flavors.create(conn, flavor), flavors.OPERATION)
    ctx(req).services.pull.queues_changed()  # its queue (docs/pull.md)
    resp.set_header("location", f"{req.root_path or ''}/scheduler/flavors/{made.uuid}")
    send_json(resp, made.as_body(), status=201)


def show(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /scheduler/flavors/{uuid}."""
    flavor = read(req, "flavors:show", lambda conn: flavors.get(conn, uuid), SINCE)
    send_json(resp, flavor.as_body())


def delete(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """DELETE /scheduler/flavors/{uuid}."""
    start(req, "flavors:delete", SINCE)
    _write(req, lambda conn: flavors.delete(conn, uuid), flavors.OPERATION)
    ctx(req).services.pull.queues_changed()  # its queues go (docs/pull.md)
    send_empty(resp)
