"""Helpers shared by the resource handlers: bodies, queries, URLs, headers."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Mapping
from email.utils import format_datetime
from typing import Any, TypeVar, cast

import falcon
import orjson
from sqlalchemy import Connection

from berth.api import body as request_body
from berth.api.context import RequestContext
from berth.api.errors import HTTPError, bad_request
from berth.placement.write.retry import atomically
from berth.schemas.validation import is_uuid_like as is_uuid_like
from berth.schemas.validation import schema_error as schema_error

JSON = "application/json"

T = TypeVar("T")


def ctx(req: falcon.Request) -> RequestContext:
    """The typed request context."""
    return cast(RequestContext, req.context)


def authorize(req: falcon.Request, action: str, target: Mapping[str, Any] | None = None) -> None:
    """Check policy for ``action``; the default target is the caller's project."""
    c = ctx(req)
    creds = c.credentials.policy_values()
    if target is None:
        target = {"project_id": c.credentials.project_id, "user_id": c.credentials.user_id}
    c.services.enforcer.authorize(action, target, creds)


def write(req: falcon.Request, once: Callable[[Connection], T], *, operation: str) -> T:
    """Run ``once`` in a write transaction, again while it loses a race.

    A lost generation swap, a unique-key race or a Galera certification
    failure (on a multi-writer cluster) is run again, up to
    ``allocation_conflict_retry_count`` times, like the allocation writes.
    """
    services = ctx(req).services
    attempts = services.settings.allocation_conflict_retry_count
    return atomically(services.db, once, attempts, operation=operation)


def require_json_content(req: falcon.Request) -> None:
    """415 unless the request body is declared as JSON."""
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if content_type != JSON:
        shown = content_type or "None"
        raise HTTPError(415, f"The media type {shown} is not supported, use {JSON}")


def check_accept(req: falcon.Request) -> None:
    """406 when an explicit Accept header rules out JSON."""
    accept = req.get_header("accept")
    if accept and not req.client_accepts(JSON):
        raise HTTPError(406, f"Only {JSON} is provided")


def read_json(req: falcon.Request) -> Any:
    """The body parsed as JSON, within the size and nesting limits (413, 400)."""
    settings = ctx(req).services.settings
    length = req.content_length
    stream = req.bounded_stream if length is not None else req.stream
    limit = settings.max_request_body_bytes
    try:
        raw = request_body.read(stream, length, _ends(req), limit)
    except OSError as exc:  # the client went away mid-body (gunicorn: a reset)
        raise bad_request(f"The request body could not be read: {exc}") from None
    return request_body.loads(raw, settings.max_json_depth)


def _ends(req: falcon.Request) -> bool:
    """A body without a length whose end the server marks (chunked): it may be read."""
    return req.content_length is None and bool(req.env.get("wsgi.input_terminated"))


def finish_body(req: falcon.Request, limit: int) -> None:
    """Read and drop a body no handler read (within ``limit``), so the connection stays usable.

    granian closes a kept-alive connection whose request body was left
    unread (after a 401, 404, 405...), sometimes without saying so, and the
    client's next request on it fails.  A body over the limit stays unread:
    its connection closes.
    """
    try:
        length = req.content_length
    except falcon.HTTPError:
        return  # an invalid Content-Length: answered 400, nothing to read by
    with contextlib.suppress(OSError):  # the client went away: nothing to keep
        if length is not None:
            if length <= limit:
                req.bounded_stream.exhaust()
        elif _ends(req):
            request_body.drain(req.stream, limit)


def extract_json(req: falcon.Request, schema: Mapping[str, Any]) -> Any:
    """Read the body, require JSON and validate it against ``schema``."""
    require_json_content(req)
    data = read_json(req)
    validate(data, schema)
    return data


def validate(data: Any, schema: Mapping[str, Any]) -> None:
    """400 'JSON does not validate' with jsonschema's own message."""
    error = schema_error(data, schema)
    if error is not None:
        raise bad_request(f"JSON does not validate: {error}")


def send_json(resp: falcon.Response, body: Any, status: int = 200) -> None:
    """Serialise ``body`` as the JSON response."""
    resp.status = status
    resp.content_type = JSON
    resp.data = orjson.dumps(body)


def send_empty(resp: falcon.Response, status: int = 204) -> None:
    """A response with no body (204) and no content type."""
    resp.status = status
    resp.data = b""
    resp.content_type = None  # type: ignore[assignment, unused-ignore]


def http_date(value: datetime.datetime | None) -> str:
    """An HTTP-date for ``value`` (naive values are UTC)."""
    if value is None:
        value = datetime.datetime.now(datetime.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return format_datetime(value.astimezone(datetime.UTC), usegmt=True)


def set_last_modified(
    req: falcon.Request, resp: falcon.Response, when: datetime.datetime | None
) -> None:
    """From 1.15 on, send last-modified and cache-control: no-cache."""
    if ctx(req).want(15):
        resp.set_header("last-modified", http_date(when))
        resp.set_header("cache-control", "no-cache")


def latest(*stamps: datetime.datetime | None) -> datetime.datetime | None:
    """The most recent of the given timestamps (None when none is set)."""
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


def query_values(req: falcon.Request, name: str) -> list[str]:
    """Every value given for query parameter ``name`` (repeats kept)."""
    values: list[str] = []
    for key, value in _parsed_query(req):
        if key == name:
            values.append(value)
    return values


def query_params(req: falcon.Request) -> dict[str, list[str]]:
    """All query parameters, each with every value given for it."""
    out: dict[str, list[str]] = {}
    for key, value in _parsed_query(req):
        out.setdefault(key, []).append(value)
    return out


def _parsed_query(req: falcon.Request) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(req.query_string, keep_blank_values=True)


def single_query(req: falcon.Request, name: str) -> str | None:
    """The value of a query parameter that may be given at most once."""
    values = query_values(req, name)
    if not values:
        return None
    return values[-1]


def provider_url(req: falcon.Request, uuid_: str) -> str:
    """The path of a resource provider, under the app's mount point."""
    return f"{req.root_path or ''}/resource_providers/{uuid_}"
