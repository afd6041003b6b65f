"""``/resource_classes``: list, create, show, rename or ensure, delete (1.2+)."""

from __future__ import annotations

from typing import Any

import falcon

from berth.api.resources.steps import since
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    extract_json,
    require_json_content,
    send_empty,
    send_json,
    set_last_modified,
    validate,
    write,
)
from berth.placement import resource_classes as domain
from berth.placement.named import last_change
from berth.schemas.resource_classes import RESOURCE_CLASS

# Resource classes appeared in 1.2; PUT creates instead of renaming from 1.7.
SINCE = 2
PUT_ENSURES = 7
OPERATION = "resource_classes"  # how retries are counted (berth_write_retries)


def _url(req: falcon.Request, name: str) -> str:
    return f"{req.root_path or ''}/resource_classes/{name}"


def _render(req: falcon.Request, rc: domain.ResourceClass) -> dict[str, Any]:
    return {"name": rc.name, "links": [{"rel": "self", "href": _url(req, rc.name)}]}


def list_classes(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /resource_classes."""
    since(req, SINCE)
    check_accept(req)
    authorize(req, "placement:resource_classes:list")
    with ctx(req).services.db.read() as conn:
        classes = domain.list_classes(conn)
    send_json(resp, {"resource_classes": [_render(req, rc) for rc in classes]})
    set_last_modified(req, resp, last_change(classes))


def create(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /resource_classes: create a custom class."""
    since(req, SINCE)
    require_json_content(req)
    authorize(req, "placement:resource_classes:create")
    data = extract_json(req, RESOURCE_CLASS)
    rc = write(req, lambda conn: domain.create_class(conn, data["name"]), operation=OPERATION)
    send_empty(resp, 201)
    resp.set_header("location", _url(req, rc.name))


def show(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """GET /resource_classes/{name}."""
    since(req, SINCE)
    check_accept(req)
    authorize(req, "placement:resource_classes:show")
    with ctx(req).services.db.read() as conn:
        rc = domain.get_class(conn, name)
    send_json(resp, _render(req, rc))
    set_last_modified(req, resp, rc.last_modified)


def update(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """PUT /resource_classes/{name}: rename (1.2-1.6) or ensure it exists (1.7+)."""
    since(req, SINCE)
    if ctx(req).want(PUT_ENSURES):
        _ensure(req, resp, name)
    else:
        _rename(req, resp, name)


def _rename(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    require_json_content(req)
    authorize(req, "placement:resource_classes:update")
    data = extract_json(req, RESOURCE_CLASS)
    rc = write(req, lambda conn: domain.rename_class(conn, name, data["name"]), operation=OPERATION)
    send_json(resp, _render(req, rc))


def _ensure(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    authorize(req, "placement:resource_classes:update")
    # The name in the URL is held to the rules of a class name in a body.
    validate({"name": name}, RESOURCE_CLASS)
    rc, created = write(req, lambda conn: domain.ensure_class(conn, name), operation=OPERATION)
    send_empty(resp, 201 if created else 204)
    resp.set_header("location", _url(req, rc.name))


def delete(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """DELETE /resource_classes/{name}: only unused custom classes."""
    since(req, SINCE)
    authorize(req, "placement:resource_classes:delete")
    write(req, lambda conn: domain.delete_class(conn, name), operation=OPERATION)
    send_empty(resp)
