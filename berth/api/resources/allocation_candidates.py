"""``GET /allocation_candidates`` (1.10+): where could these resources be allocated?"""

from __future__ import annotations

from urllib.parse import parse_qsl

import falcon

from berth import qparams
from berth.api.resources.steps import since
from berth.api.util import JSON, authorize, check_accept, ctx, set_last_modified
from berth.candidates import service
from berth.candidates.render import Shape
from berth.candidates.request import Features, parse
from berth.schemas import allocation_candidates as schemas

# Allocation candidates appeared in microversion 1.10.
SINCE = 10


def _validate(params: dict[str, list[str]], minor: int) -> None:
    """As ``jsonschema.validate`` on the last value of each parameter (same message)."""
    schema = next(schema for (_, since), schema in schemas.QUERY if minor >= since)
    qparams.validate_query(params, schema)


def list_candidates(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /allocation_candidates."""
    c = ctx(req)
    since(req, SINCE)
    check_accept(req)
    authorize(req, "placement:allocation_candidates:list")
    pairs = parse_qsl(req.query_string, keep_blank_values=True)
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    minor = c.version.minor
    _validate(params, minor)
    request = parse(pairs, Features.at(minor))
    resp.status = 200
    resp.content_type = JSON
    resp.data = service.answer(c.services, request, Shape.at(minor))
    set_last_modified(req, resp, None)
