"""``/traits`` and ``/resource_providers/{uuid}/traits`` (1.6+)."""

from __future__ import annotations

from collections.abc import Sequence

import falcon
from sqlalchemy import Connection

from berth.api.errors import HTTPError, bad_request
from berth.api.resources.steps import provider_or_404, since
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    extract_json,
    query_params,
    require_json_content,
    schema_error,
    send_empty,
    send_json,
    set_last_modified,
    write,
)
from berth.placement import errors, providers
from berth.placement import traits as domain
from berth.placement.named import last_change
from berth.schemas import traits as schemas

# Traits appeared in microversion 1.6.
SINCE = 6
OPERATION = "traits"  # how retries are counted (berth_write_retries)

INVALID_TRAIT = (
    "The trait is invalid. A valid trait must be no longer than 255 characters, "
    'start with the prefix "CUSTOM_" and use following characters: '
    '"A"-"Z", "0"-"9" and "_"'
)
BAD_NAME_FILTER = (
    "Badly formatted name parameter. Expected name query string parameter in form: "
    '?name=[in|startswith]:[name1,name2|prefix]. Got: "{}"'
)
BAD_ASSOCIATED = 'The query parameter "associated" only accepts "true" or "false"'


def _send_traits(
    req: falcon.Request,
    resp: falcon.Response,
    traits: Sequence[domain.Trait],
    generation: int | None = None,
) -> None:
    body: dict[str, object] = {"traits": [trait.name for trait in traits]}
    if generation is not None:
        body["resource_provider_generation"] = generation
    send_json(resp, body)
    set_last_modified(req, resp, last_change(traits))


def _filters(req: falcon.Request) -> domain.TraitFilter:
    """The filters of GET /traits from its query string (400 when malformed)."""
    params = {key: values[-1] for key, values in query_params(req).items()}
    error = schema_error(params, schemas.LIST_TRAITS_QUERY)
    if error is not None:
        raise bad_request(f"Invalid query string parameters: {error}")
    names: list[str] | None = None
    prefix: str | None = None
    if "name" in params:
        op, sep, value = params["name"].partition(":")
        if not sep:
            raise bad_request(BAD_NAME_FILTER.format(params["name"]))
        # Other operators are ignored, as upstream does.
        if op == "in":
            names = value.split(",")
        elif op == "startswith":
            prefix = value
    associated: bool | None = None
    if "associated" in params:
        flag = params["associated"].lower()
        if flag not in ("true", "false"):
            raise bad_request(BAD_ASSOCIATED)
        associated = flag == "true"
    return domain.TraitFilter(names=names, prefix=prefix, associated=associated)


def list_traits(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /traits, optionally filtered by name and association."""
    since(req, SINCE)
    check_accept(req)
    authorize(req, "placement:traits:list")
    filters = _filters(req)
    with ctx(req).services.db.read() as conn:
        traits = domain.list_traits(conn, filters)
    _send_traits(req, resp, traits)


def show(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """GET /traits/{name}: 204 when it exists."""
    since(req, SINCE)
    authorize(req, "placement:traits:show")
    with ctx(req).services.db.read() as conn:
        trait = domain.find_trait(conn, name)
    if trait is None:
        raise HTTPError(404, f"No such trait(s): {name}.")
    send_empty(resp)
    set_last_modified(req, resp, trait.created_at)


def create(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """PUT /traits/{name}: create a custom trait (201) or confirm it (204)."""
    since(req, SINCE)
    authorize(req, "placement:traits:update")
    if schema_error(name, schemas.CUSTOM_TRAIT_NAME) is not None:
        raise bad_request(INVALID_TRAIT)
    trait, created = write(req, lambda conn: domain.ensure_trait(conn, name), operation=OPERATION)
    send_empty(resp, 201 if created else 204)
    resp.set_header("location", f"{req.root_path or ''}/traits/{trait.name}")
    set_last_modified(req, resp, trait.created_at)


def delete(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """DELETE /traits/{name}: only custom traits no provider has."""
    since(req, SINCE)
    authorize(req, "placement:traits:delete")
    try:
        write(req, lambda conn: domain.delete_trait(conn, name), operation=OPERATION)
    except errors.NotFound as exc:
        # Upstream raises this one from the handler, so it carries "vary".
        raise HTTPError(404, exc.message) from None
    send_empty(resp)


def list_for_provider(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /resource_providers/{uuid}/traits."""
    since(req, SINCE)
    check_accept(req)
    authorize(req, "placement:resource_providers:traits:list")
    with ctx(req).services.db.read() as conn:
        provider = provider_or_404(conn, uuid)
        traits = domain.provider_traits(conn, provider.id)
    _send_traits(req, resp, traits, provider.generation)


def replace_for_provider(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """PUT /resource_providers/{uuid}/traits: replace the set (generation checked)."""
    since(req, SINCE)
    require_json_content(req)
    authorize(req, "placement:resource_providers:traits:update")
    data = extract_json(req, schemas.PROVIDER_TRAITS)

    def once(conn: Connection) -> tuple[list[domain.Trait], int]:
        return domain.replace_provider_traits(
            conn, uuid, data["traits"], data["resource_provider_generation"]
        )

    traits, generation = write(req, once, operation=OPERATION)
    _send_traits(req, resp, traits, generation)


def delete_for_provider(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """DELETE /resource_providers/{uuid}/traits: remove them all."""
    since(req, SINCE)
    authorize(req, "placement:resource_providers:traits:delete")

    def once(conn: Connection) -> int:
        provider = providers.get_provider(conn, uuid)
        return domain.clear_provider_traits(conn, provider)

    write(req, once, operation=OPERATION)
    send_empty(resp)
