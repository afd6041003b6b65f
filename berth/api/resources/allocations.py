"""``/allocations``, ``/allocations/{consumer_uuid}`` and a provider's allocations."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import falcon

from berth.api.errors import HTTPError, bad_request, conflict
from berth.api.resources.steps import provider_or_404, since, versioned_body
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    extract_json,
    is_uuid_like,
    latest,
    require_json_content,
    send_empty,
    send_json,
    set_last_modified,
)
from berth.placement import consumers, errors
from berth.placement.write import replace
from berth.placement.write.capacity import InvalidAllocation
from berth.placement.write.replace import ConsumerAllocations
from berth.placement.write.retry import atomically
from berth.schemas import allocations as schemas
from berth.schemas import versioned


def list_for_consumer(req: falcon.Request, resp: falcon.Response, consumer_uuid: str) -> None:
    """GET /allocations/{consumer_uuid}: an unknown consumer has no allocations."""
    check_accept(req)
    authorize(req, "placement:allocations:list")
    c = ctx(req)
    with c.services.db.read() as conn:
        view = consumers.allocations_of(conn, consumer_uuid)
    body: dict[str, Any] = {"allocations": {}}
    if view is not None:
        for held in view.allocations:
            entry = body["allocations"].setdefault(held.key, {"resources": {}})
            entry["resources"][held.resource_class] = held.used
            entry["generation"] = held.generation
        if c.want(12):
            body["project_id"] = view.project_id
            body["user_id"] = view.user_id
        if c.want(28):
            body["consumer_generation"] = view.generation
        if c.want(38):
            body["consumer_type"] = view.consumer_type
    send_json(resp, body)
    held_list = view.allocations if view else []
    set_last_modified(req, resp, latest(*(h.modified for h in held_list)))


def list_for_provider(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /resource_providers/{uuid}/allocations: allocations by consumer."""
    check_accept(req)
    authorize(req, "placement:resource_providers:allocations:list")
    c = ctx(req)
    with c.services.db.read() as conn:
        provider = provider_or_404(conn, uuid, "Resource provider '{uuid}' not found: {message}")
        held_list = consumers.allocations_on(conn, provider.id)
    by_consumer: dict[str, Any] = {}
    for held in held_list:
        entry = by_consumer.setdefault(held.key, {"resources": {}})
        entry["resources"][held.resource_class] = held.used
        if c.want(28):
            entry["consumer_generation"] = held.generation
    body = {"allocations": by_consumer, "resource_provider_generation": provider.generation}
    send_json(resp, body)
    set_last_modified(req, resp, latest(*(h.modified for h in held_list)))


def _owned(data: dict[str, Any], consumer_uuid: str, resources: Any) -> ConsumerAllocations:
    """One consumer's request from a (dict form) body."""
    return ConsumerAllocations(
        uuid=consumer_uuid,
        resources={rp: dict(alloc["resources"]) for rp, alloc in resources.items()},
        project_id=data.get("project_id"),
        user_id=data.get("user_id"),
        generation=data.get("consumer_generation"),
        consumer_type=data.get("consumer_type"),
    )


def _put_request(data: dict[str, Any], consumer_uuid: str, minor_12: bool) -> ConsumerAllocations:
    """The PUT body as a request, the 1.0-1.11 list form turned into the dict form."""
    if minor_12:
        return _owned(data, consumer_uuid, data["allocations"])
    by_provider = {a["resource_provider"]["uuid"]: a for a in data["allocations"]}
    return _owned(data, consumer_uuid, by_provider)


@contextmanager
def _explained(not_found: Callable[[str], str]) -> Iterator[None]:
    """Turn the write's domain errors into the reference's answers."""
    try:
        yield
    except errors.StaleGeneration:
        raise
    except errors.NotFound as exc:
        raise bad_request(not_found(exc.message)) from None
    except InvalidAllocation as exc:
        raise conflict(f"Unable to allocate inventory: {exc.message}") from None
    except errors.ConcurrentUpdate as exc:
        raise conflict(
            f"Inventory and/or allocations changed while attempting to allocate: {exc.message}",
            errors.CONCURRENT_UPDATE,
        ) from None


def put_for_consumer(req: falcon.Request, resp: falcon.Response, consumer_uuid: str) -> None:
    """PUT /allocations/{consumer_uuid}: replace one consumer's allocations."""
    require_json_content(req)
    authorize(req, "placement:allocations:update")
    if not is_uuid_like(consumer_uuid):
        raise bad_request(f"Malformed consumer_uuid: {consumer_uuid}")
    consumer_uuid = str(uuidlib.UUID(consumer_uuid))
    c = ctx(req)
    data = extract_json(req, versioned(schemas.PUT, c.version))
    request = _put_request(data, consumer_uuid, c.want(12))
    with _explained(
        lambda msg: f"Unable to allocate inventory for consumer {consumer_uuid}: {msg}"
    ):
        replace.write(
            c.services.db,
            [request],
            check_generation=c.want(28),
            attempts=c.services.settings.allocation_conflict_retry_count,
        )
    send_empty(resp)


def post_many(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /allocations (1.13+): replace several consumers' allocations at once."""
    c = ctx(req)
    since(req, 13)
    data = versioned_body(req, "placement:allocations:manage", schemas.POST)
    requests = [_owned(body, uuid, body["allocations"]) for uuid, body in data.items()]
    with _explained(lambda msg: f"Unable to allocate inventory {msg}"):
        replace.write(
            c.services.db,
            requests,
            check_generation=c.want(28),
            attempts=c.services.settings.allocation_conflict_retry_count,
        )
    send_empty(resp)


def delete_for_consumer(req: falcon.Request, resp: falcon.Response, consumer_uuid: str) -> None:
    """DELETE /allocations/{consumer_uuid}: remove all of a consumer's allocations."""
    authorize(req, "placement:allocations:delete")
    c = ctx(req)
    try:
        atomically(
            c.services.db,
            lambda conn: consumers.delete_allocations(conn, consumer_uuid),
            c.services.settings.allocation_conflict_retry_count,
            operation="allocations",
        )
    except errors.NotFound as exc:
        raise HTTPError(404, exc.message) from None
    send_empty(resp)
