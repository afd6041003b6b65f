"""``GET /allocation_candidates`` (1.10+): where could these resources be allocated?"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qsl

import falcon
import jsonschema

from berth.api.errors import HTTPError, bad_request
from berth.api.util import (
    FORMAT_CHECKER,
    JSON,
    authorize,
    check_accept,
    ctx,
    set_last_modified,
)
from berth.candidates import service
from berth.candidates.render import Shape
from berth.candidates.request import Features, parse
from berth.schemas import allocation_candidates as schemas

# Allocation candidates appeared in microversion 1.10.
SINCE = 10


@functools.cache
def _validator(minor: int) -> Any:
    """The query validator of a microversion, built once (checking a schema is slow)."""
    schema = next(schema for (_, since), schema in schemas.QUERY if minor >= since)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMAT_CHECKER)


def _validate(params: dict[str, list[str]], minor: int) -> None:
    """As ``jsonschema.validate`` on the last value of each parameter (same message)."""
    flat = {key: values[-1] for key, values in params.items()}
    error = jsonschema.exceptions.best_match(_validator(minor).iter_errors(flat))
    if error is not None:
        raise bad_request(f"Invalid query string parameters: {error}")


def list_candidates(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /allocation_candidates."""
    c = ctx(req)
    if not c.want(SINCE):
        raise HTTPError(404, "")
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
