"""``GET /resource_providers/{uuid}/usages`` and ``GET /usages``."""

from __future__ import annotations

from typing import Any

import falcon

from berth import qparams
from berth.api.resources.steps import provider_or_404, since
from berth.api.util import (
    authorize,
    check_accept,
    ctx,
    query_params,
    send_json,
    set_last_modified,
    single_query,
)
from berth.db.clock import utcnow
from berth.placement import usages as usage
from berth.schemas import usages as schemas
from berth.schemas import versioned


def provider_usages(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /resource_providers/{uuid}/usages: allocated amount per inventory class."""
    check_accept(req)
    authorize(req, "placement:resource_providers:usages")
    with ctx(req).services.db.read() as conn:
        provider = provider_or_404(conn, uuid)
        used = usage.provider_usages(conn, provider.id)
    send_json(resp, {"resource_provider_generation": provider.generation, "usages": used})
    # Usage is "as of now": there is no stored time to report.
    set_last_modified(req, resp, utcnow())


def total_usages(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /usages?project_id=[&user_id=][&consumer_type=] (microversion 1.9)."""
    c = ctx(req)
    since(req, 9, code=None)
    check_accept(req)
    project_id = single_query(req, "project_id")
    authorize(req, "placement:usages", {"project_id": project_id})
    qparams.validate_query(query_params(req), versioned(schemas.TOTAL_USAGES_QUERY, c.version))
    # The schema made project_id required.
    who = usage.ProjectFilter(str(project_id), single_query(req, "user_id"))
    with c.services.db.read() as conn:
        body: dict[str, Any]
        if c.want(38):
            body = usage.usages_by_consumer_type(conn, who, single_query(req, "consumer_type"))
        else:
            body = usage.total_usages(conn, who)
    send_json(resp, {"usages": body})
    set_last_modified(req, resp, utcnow())
