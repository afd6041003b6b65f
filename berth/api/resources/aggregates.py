"""``/resource_providers/{uuid}/aggregates`` (microversion 1.1).

Before 1.19 the body is a bare list of uuids and the provider generation is
neither checked nor changed; from 1.19 both the body and the response carry
the generation, which the write bumps.
"""

from __future__ import annotations

from collections.abc import Sequence

import falcon

from berth.api.errors import conflict
from berth.api.resources.steps import provider_body, since
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    require_json_content,
    send_json,
    set_last_modified,
    write,
)
from berth.db.clock import utcnow
from berth.placement import aggregates as aggs
from berth.placement import errors
from berth.placement.providers import get_provider
from berth.schemas import aggregates as schemas
from berth.schemas import versioned

POLICY = "placement:resource_providers:aggregates:"
# Creating an aggregate can lose a race with another writer; then the whole
# transaction is retried (the reference retries up to 10 times too).
RACE_RETRIES = 10
LOST_RACE = (
    "Another thread concurrently updated the resource provider data. Please retry your update"
)


def _send(
    req: falcon.Request, resp: falcon.Response, uuids: Sequence[str], generation: int
) -> None:
    body: dict[str, object] = {"aggregates": list(uuids)}
    if ctx(req).want(19):
        body["resource_provider_generation"] = generation
    send_json(resp, body)
    # Associations carry no useful time of change: the reference uses now.
    set_last_modified(req, resp, utcnow())


def show(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /resource_providers/{uuid}/aggregates."""
    check_accept(req)
    since(req, 1, code=None)
    authorize(req, POLICY + "list")
    with ctx(req).services.db.read() as conn:
        provider = get_provider(conn, uuid)
        found = aggs.provider_aggregates(conn, provider.id)
    _send(req, resp, found, provider.generation)


def replace(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """PUT /resource_providers/{uuid}/aggregates: set the provider's aggregates."""
    require_json_content(req)
    since(req, 1, code=None)
    authorize(req, POLICY + "update")
    c = ctx(req)
    with_generation = c.want(19)
    data = provider_body(req, uuid, versioned(schemas.REPLACE, c.version))
    uuids = data["aggregates"] if with_generation else data
    expected = data["resource_provider_generation"] if with_generation else None
    generation = _write(req, uuid, uuids, expected, with_generation)
    _send(req, resp, uuids, generation)


def _write(
    req: falcon.Request, uuid: str, uuids: Sequence[str], expected: int | None, bump: bool
) -> int:
    """Set the aggregates, retrying when aggregate creation races another writer."""
    for attempt in range(RACE_RETRIES + 1):
        try:
            return write(
                req,
                lambda conn: aggs.set_aggregates(conn, uuid, uuids, expected, bump),
                operation="aggregates",
            )
        except errors.StaleGeneration as exc:
            raise conflict(exc.message, exc.code) from None
        except errors.ConcurrentUpdate:
            raise conflict(f"Update conflict: {LOST_RACE}", errors.CONCURRENT_UPDATE) from None
        except aggs.AggregateRace as exc:
            if attempt == RACE_RETRIES:
                raise conflict(f"Update conflict: {exc.message}") from None
    raise AssertionError("unreachable")
