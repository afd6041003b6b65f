"""Steps the handlers of several resources take alike (``berth.api.util`` has the ones
every handler takes): the microversion a route appeared in, a write's versioned body,
and the provider a URL names, with the reference's 404s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import falcon
from sqlalchemy import Connection

from berth.api.errors import HTTPError, not_found
from berth.api.util import authorize, ctx, extract_json, require_json_content
from berth.placement import errors
from berth.placement.providers import ProviderRow, get_provider
from berth.schemas import VersionedSchemas, versioned


def since(req: falcon.Request, minimum: int, code: str | None = errors.DEFAULT_CODE) -> None:
    """404 (empty, with ``code``) below microversion 1.``minimum``: the route is not there."""
    if not ctx(req).want(minimum):
        raise HTTPError(404, "", code=code)  # type: ignore[arg-type]


def versioned_body(req: falcon.Request, action: str, schemas: VersionedSchemas) -> Any:
    """A write's first steps: a JSON body, the policy ``action``, then the body itself,
    valid for the request's microversion."""
    require_json_content(req)
    authorize(req, action)
    return extract_json(req, versioned(schemas, ctx(req).version))


def require_provider(req: falcon.Request, uuid: str) -> None:
    """404 for a missing provider before the body is looked at, as the reference."""
    with ctx(req).services.db.read() as conn:
        get_provider(conn, uuid)


def provider_body(req: falcon.Request, uuid: str, schema: Mapping[str, Any]) -> Any:
    """The valid JSON body of a write to provider ``uuid``.

    The reference looks for the provider before the body: a refused body
    is answered 404 instead when the provider is missing.  An accepted one
    needs no look of its own (the write finds the provider, or answers the
    same 404), which saves a transaction per write.
    """
    try:
        return extract_json(req, schema)
    except (HTTPError, falcon.HTTPError):
        require_provider(req, uuid)
        raise


def provider_or_404(
    conn: Connection, uuid: str, wording: str = "{message}: {message}"
) -> ProviderRow:
    """The provider; a missing one answers 404 with the endpoint's ``wording`` of why
    (``{message}``: the domain's, ``{uuid}``: the one asked for)."""
    try:
        return get_provider(conn, uuid)
    except errors.NotFound as exc:
        raise not_found(wording.format(uuid=uuid, message=exc.message)) from None
