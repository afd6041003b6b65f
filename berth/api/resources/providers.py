"""``/resource_providers`` and ``/resource_providers/{uuid}``."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import falcon

from berth import qparams
from berth.api.errors import bad_request
from berth.api.resources.steps import provider_body
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    extract_json,
    latest,
    provider_url,
    query_params,
    require_json_content,
    send_empty,
    send_json,
    set_last_modified,
    write,
)
from berth.placement import errors, providers
from berth.placement.providers import ProviderRow, get_provider
from berth.schemas import providers as schemas
from berth.schemas import versioned
from berth.sync.changes import HOST, Change

OPERATION = "providers"  # how retries are counted (berth_write_retries)


def _links(req: falcon.Request, provider: ProviderRow) -> list[dict[str, str]]:
    url = provider_url(req, provider.uuid)
    rels = ["inventories", "usages"]
    c = ctx(req)
    for minor, rel in ((1, "aggregates"), (6, "traits"), (11, "allocations")):
        if c.want(minor):
            rels.append(rel)
    return [{"rel": "self", "href": url}] + [{"rel": r, "href": f"{url}/{r}"} for r in rels]


def serialize(req: falcon.Request, provider: ProviderRow) -> dict[str, Any]:
    """A provider as the API shows it at the request's microversion."""
    data: dict[str, Any] = {
        "uuid": provider.uuid,
        "name": provider.name,
        "generation": provider.generation,
        "links": _links(req, provider),
    }
    if ctx(req).want(14):
        data["parent_provider_uuid"] = provider.parent_uuid
        data["root_provider_uuid"] = provider.root_uuid
    return data


def _modified(provider: ProviderRow) -> Any:
    return provider.updated_at or provider.created_at


def create(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /resource_providers."""
    require_json_content(req)
    authorize(req, "placement:resource_providers:create")
    c = ctx(req)
    data = extract_json(req, versioned(schemas.CREATE, c.version))
    uuid = str(uuidlib.UUID(data["uuid"])) if data.get("uuid") else str(uuidlib.uuid4())
    parent = data.get("parent_provider_uuid")
    provider = write(
        req, lambda conn: providers.create(conn, uuid, data["name"], parent), operation=OPERATION
    )
    resp.set_header("location", provider_url(req, provider.uuid))
    if c.want(20):
        send_json(resp, serialize(req, provider))
        set_last_modified(req, resp, _modified(provider))
    else:
        send_empty(resp, 201)


def show(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /resource_providers/{uuid}."""
    check_accept(req)
    authorize(req, "placement:resource_providers:show")
    with ctx(req).services.db.read() as conn:
        provider = get_provider(conn, uuid)
    send_json(resp, serialize(req, provider))
    set_last_modified(req, resp, _modified(provider))


def update(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """PUT /resource_providers/{uuid}: rename and (from 1.14) re-parent."""
    require_json_content(req)
    authorize(req, "placement:resource_providers:update")
    c = ctx(req)
    data = provider_body(req, uuid, versioned(schemas.UPDATE, c.version))
    provider = write(
        req,
        lambda conn: providers.update_provider(
            conn,
            uuid,
            data["name"],
            data.get("parent_provider_uuid"),
            change_parent="parent_provider_uuid" in data,
            allow_reparenting=c.want(37),
        ),
        operation=OPERATION,
    )
    send_json(resp, serialize(req, provider))
    set_last_modified(req, resp, provider.updated_at)


def delete(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """DELETE /resource_providers/{uuid}."""
    authorize(req, "placement:resource_providers:delete")
    had_state = write(req, lambda conn: providers.delete_provider(conn, uuid), operation=OPERATION)
    if had_state:  # wake the host catalogs: they read the state log for it
        ctx(req).services.publish([Change(HOST, 0, uuid, carried=False)])
    send_empty(resp)


def _filters(req: falcon.Request) -> providers.ProviderFilter:
    c = ctx(req)
    params = query_params(req)
    qparams.validate_query(params, versioned(schemas.LIST_QUERY, c.version))
    flt = providers.ProviderFilter()
    if "member_of" in params:
        flt.member_of, flt.forbidden_aggs = qparams.parse_member_of(
            params["member_of"], allow_multiple=c.want(24), allow_forbidden=c.want(32)
        )
    if "required" in params:
        flt.required_traits, flt.forbidden_traits = qparams.parse_required(
            params["required"], allow_forbidden=c.want(22), allow_any=c.want(39)
        )
    for key in ("uuid", "name", "in_tree"):
        if key in params:
            setattr(flt, key, params[key][-1])
    if "resources" in params:
        flt.resources = qparams.parse_resources(params["resources"][-1])
    return flt


def list_providers(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /resource_providers with its filters."""
    check_accept(req)
    authorize(req, "placement:resource_providers:list")
    flt = _filters(req)
    with ctx(req).services.db.read() as conn:
        try:
            found = providers.list_providers(conn, flt)
        except errors.NotFound as exc:
            if flt.resources and "resource class" in exc.message:
                raise bad_request(
                    f"Invalid resource class in resources parameter: {exc.message}"
                ) from None
            raise bad_request(f'Invalid trait(s) in "required" parameter: {exc.message}') from None
    send_json(resp, {"resource_providers": [serialize(req, p) for p in found]})
    set_last_modified(req, resp, latest(*(_modified(p) for p in found)))
