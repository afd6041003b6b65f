"""``/resource_providers/{uuid}/inventories`` and ``.../inventories/{resource_class}``.

Each handler words the domain's errors as the reference does for that
request (the same error gets different text and codes on different
endpoints, so the wording lives here).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import falcon
from sqlalchemy import Connection

from berth.api.errors import HTTPError, bad_request, conflict, not_found
from berth.api.resources.steps import provider_body, provider_or_404
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    http_date,
    latest,
    provider_url,
    require_json_content,
    send_empty,
    send_json,
    write,
)
from berth.db.clock import utcnow
from berth.placement import errors
from berth.placement import inventories as inv
from berth.placement.write.capacity import InventoryInUse
from berth.schemas import inventories as schemas

POLICY = "placement:resource_providers:inventories:"
OPERATION = "inventories"  # how retries are counted (berth_write_retries)
# The reference's words when another writer bumped the generation first.
LOST_RACE = (
    "Another thread concurrently updated the resource provider data. Please retry your update"
)
# The reference's 404 on GET for a missing provider (a space before the colon).
MISSING_PROVIDER = "{message} : {message}"


def _cache_headers(
    req: falcon.Request, resp: falcon.Response, when: datetime.datetime | None
) -> None:
    """From 1.15: cache-control always, last-modified when there is a time to give."""
    if ctx(req).want(15):
        resp.set_header("cache-control", "no-cache")
        if when is not None:
            resp.set_header("last-modified", http_date(when))


def _inventory_url(req: falcon.Request, uuid: str, resource_class: str) -> str:
    # Made absolute by the middleware, as WebOb does for the reference.
    return f"{provider_url(req, uuid)}/inventories/{resource_class}"


def _send_one(
    req: falcon.Request,
    resp: falcon.Response,
    inventory: inv.Inventory,
    generation: int,
    status: int = 200,
) -> None:
    body: dict[str, Any] = inventory.as_dict()
    if generation:
        body["resource_provider_generation"] = generation
    send_json(resp, body, status)
    _cache_headers(req, resp, inventory.last_modified or utcnow())


def _send_all(
    req: falcon.Request,
    resp: falcon.Response,
    inventories: list[inv.Inventory],
    generation: int,
    when: datetime.datetime | None,
) -> None:
    body = {
        "resource_provider_generation": generation,
        "inventories": {i.resource_class: i.as_dict() for i in inventories},
    }
    send_json(resp, body)
    _cache_headers(req, resp, when)


def _write_body(req: falcon.Request, uuid: str, action: str, schema: dict[str, Any]) -> Any:
    """A write's first steps: a JSON body, the policy, then the body itself (404 rather
    than a refused body when the provider is missing, as the reference)."""
    require_json_content(req)
    authorize(req, POLICY + action)
    return provider_body(req, uuid, schema)


def list_inventories(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /resource_providers/{uuid}/inventories."""
    check_accept(req)
    authorize(req, POLICY + "list")
    with ctx(req).services.db.read() as conn:
        provider = provider_or_404(conn, uuid, MISSING_PROVIDER)
        found = inv.list_inventories(conn, provider.id)
    _send_all(req, resp, found, provider.generation, latest(*(i.last_modified for i in found)))


def show(req: falcon.Request, resp: falcon.Response, uuid: str, resource_class: str) -> None:
    """GET /resource_providers/{uuid}/inventories/{resource_class}."""
    check_accept(req)
    authorize(req, POLICY + "show")
    with ctx(req).services.db.read() as conn:
        provider = provider_or_404(conn, uuid, MISSING_PROVIDER)
        found = inv.find_inventory(conn, provider.id, resource_class)
    if found is None:
        raise not_found(f"No inventory of class {resource_class} for {uuid}")
    _send_one(req, resp, found, provider.generation)


def create(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """POST /resource_providers/{uuid}/inventories: add one class."""
    c = ctx(req)
    data = _write_body(req, uuid, "create", schemas.CREATE)
    new = inv.Inventory.from_body(data["resource_class"], data)
    try:
        generation = write(
            req, lambda conn: inv.add_inventory(conn, uuid, new, c.want(26)), operation=OPERATION
        )
    except errors.ConcurrentUpdate:
        raise conflict(f"Update conflict: {LOST_RACE}", errors.CONCURRENT_UPDATE) from None
    except inv.DuplicateInventory as exc:
        raise conflict(f"Update conflict: {exc.message}", exc.code) from None
    except (inv.InvalidCapacity, inv.UnknownResourceClass) as exc:
        raise bad_request(
            f"Unable to create inventory for resource provider {uuid}: {exc.message}"
        ) from None
    resp.set_header("location", _inventory_url(req, uuid, new.resource_class))
    _send_one(req, resp, new, generation, status=201)


def update(req: falcon.Request, resp: falcon.Response, uuid: str, resource_class: str) -> None:
    """PUT /resource_providers/{uuid}/inventories/{resource_class}: change one class."""
    data = _write_body(req, uuid, "update", schemas.UPDATE_ONE)
    changed = inv.Inventory.from_body(resource_class, data)
    try:
        generation = _update(req, uuid, data, inv.update_inventory, changed)
    except inv.InventoryNotFound as exc:
        raise bad_request(
            f"No inventory record with resource class for resource provider {uuid}: {exc.message}"
        ) from None
    _send_one(req, resp, changed, generation)


def _update(
    req: falcon.Request,
    uuid: str,
    data: dict[str, Any],
    change: Callable[[Connection, str, Any, int, bool], int],
    inventory: Any,
) -> int:
    """``change`` the inventory at the body's provider generation; the new generation.
    The refusals both PUTs word alike: 409 for a stale generation or a concurrent write
    that won the swap, 400 for a reserved amount that leaves no capacity."""
    c = ctx(req)
    try:
        generation = data["resource_provider_generation"]
        return write(
            req,
            lambda conn: change(conn, uuid, inventory, generation, c.want(26)),
            operation=OPERATION,
        )
    except errors.StaleGeneration as exc:
        raise conflict(exc.message, errors.CONCURRENT_UPDATE) from None
    except errors.ConcurrentUpdate:
        raise conflict(f"update conflict: {LOST_RACE}", errors.CONCURRENT_UPDATE) from None
    except inv.InvalidCapacity as exc:
        raise bad_request(
            f"Unable to update inventory for resource provider {uuid}: {exc.message}"
        ) from None


def replace_all(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """PUT /resource_providers/{uuid}/inventories: set every class at once."""
    data = _write_body(req, uuid, "update", schemas.REPLACE_ALL)
    wanted = [inv.Inventory.from_body(rc, body) for rc, body in data["inventories"].items()]
    try:
        generation = _update(req, uuid, data, inv.replace_inventories, wanted)
    except (InventoryInUse, inv.DuplicateInventory) as exc:
        raise conflict(f"update conflict: {exc.message}", exc.code) from None
    except inv.InventoryNotFound as exc:
        raise conflict(
            "Race condition detected when setting inventory. No inventory record with "
            f"resource class for resource provider {uuid}: {exc.message}"
        ) from None
    except inv.UnknownResourceClass as exc:
        raise bad_request(
            f"Unknown resource class in inventory for resource provider {uuid}: {exc.message}"
        ) from None
    _send_all(req, resp, wanted, generation, utcnow())


def delete(req: falcon.Request, resp: falcon.Response, uuid: str, resource_class: str) -> None:
    """DELETE /resource_providers/{uuid}/inventories/{resource_class}."""
    authorize(req, POLICY + "delete")
    try:
        write(
            req, lambda conn: inv.delete_inventory(conn, uuid, resource_class), operation=OPERATION
        )
    except (errors.ConcurrentUpdate, InventoryInUse) as exc:
        # The reference words both alike, with the concurrent-update code.
        reason = exc.message if isinstance(exc, InventoryInUse) else LOST_RACE
        raise conflict(
            f"Unable to delete inventory of class {resource_class}: {reason}",
            errors.CONCURRENT_UPDATE,
        ) from None
    except (inv.UnknownResourceClass, inv.InventoryNotFound) as exc:
        raise not_found(
            f"No inventory of class {resource_class} found for delete: {exc.message}"
        ) from None
    send_empty(resp)


def delete_all(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """DELETE /resource_providers/{uuid}/inventories (microversion 1.5)."""
    if not ctx(req).want(5):
        raise HTTPError(405, "", code=None)  # type: ignore[arg-type]
    authorize(req, POLICY + "delete")
    try:
        write(
            req,
            lambda conn: inv.replace_inventories(conn, uuid, [], expected_generation=None),
            operation=OPERATION,
        )
    except errors.ConcurrentUpdate:
        raise conflict(
            f"Unable to delete inventory for resource provider {uuid} because the "
            "inventory was updated by another process. Please retry your request.",
            errors.CONCURRENT_UPDATE,
        ) from None
    except InventoryInUse as exc:
        raise conflict(exc.message, exc.code) from None
    send_empty(resp)
