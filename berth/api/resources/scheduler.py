"""``/scheduler/...``: berth's scheduler extension (its own version line, ``scheduler 1.x``).

Handlers parse, validate, authorize, call :mod:`berth.scheduler` and
render.  The version is asked for with ``OpenStack-API-Version: scheduler
1.1`` (absent: the minimum); ``Berth-Scheduler-Version`` names the newest.
A route newer than the version asked for answers 404, as Placement's do below
their microversion (the ``since`` of :func:`start` and :func:`read`). Other resources
of the extension (flavors, quotas, host state) have their own modules and take their
first steps here.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import falcon
import microversion_parse
from sqlalchemy import Connection

from berth.api.errors import HTTPError, detail_text
from berth.api.util import authorize, check_accept, ctx, extract_json, is_uuid_like, send_empty
from berth.api.util import send_json as _send_json
from berth.placement import errors
from berth.placement.write.retry import atomically
from berth.scheduler import NoValidHost, from_body, groups, host_attributes, select_destinations
from berth.scheduler.spec import ServerGroupSpec
from berth.schemas import scheduler as schemas
from berth.schemas import versioned
from berth.sync.changes import Change

SERVICE_TYPE = "scheduler"
VERSIONS = ["1.0", "1.1", "1.2", "1.3"]
VERSION_HEADER = "berth-scheduler-version"

T = TypeVar("T")


def _version(req: falcon.Request) -> microversion_parse.Version:
    headers = {k.lower(): v for k, v in req.headers.items()}
    try:
        return microversion_parse.extract_version(headers, SERVICE_TYPE, VERSIONS)
    except (ValueError, TypeError) as exc:
        raise HTTPError(406, f"Invalid scheduler version: {exc}", code=None) from None  # type: ignore[arg-type]


def _authorize(req: falcon.Request, action: str, target: Mapping[str, Any] | None) -> None:
    """Check ``berth:scheduler:<action>`` (admin or service unless the policy says otherwise)."""
    rule = f"berth:scheduler:{action}"
    try:
        authorize(req, rule, target)
    except errors.NotAuthorized:
        raise errors.NotAuthorized(f"Policy does not allow {rule} to be performed.") from None


def start(
    req: falcon.Request,
    action: str,
    since: tuple[int, int] = (1, 0),
    target: Mapping[str, Any] | None = None,
) -> microversion_parse.Version:
    """A handler's first steps: the version (404 below ``since``: the route is not there),
    then the policy ``berth:scheduler:<action>`` on ``target`` (default: the caller's
    project)."""
    version = _version(req)
    if not version.matches(since):
        raise HTTPError(404, "")
    _authorize(req, action, target)
    return version


def send_json(resp: falcon.Response, body: Any, status: int = 200) -> None:
    """Send ``body`` with the scheduler version header."""
    resp.set_header(VERSION_HEADER, f"{SERVICE_TYPE} {VERSIONS[-1]}")
    _send_json(resp, body, status)


def read(
    req: falcon.Request,
    action: str,
    reader: Callable[[Connection], T],
    since: tuple[int, int] = (1, 0),
    target: Mapping[str, Any] | None = None,
) -> T:
    """A GET's steps: the Accept header, :func:`start`, then ``reader`` in one read
    transaction."""
    check_accept(req)
    start(req, action, since, target)
    with ctx(req).services.db.read() as conn:
        return reader(conn)


def _write(req: falcon.Request, write: Callable[[Connection], T], operation: str) -> T:
    """``write`` in a write transaction, retried on a lost race as allocations are
    (``operation`` names the retries in the metrics)."""
    services = ctx(req).services
    retries = services.settings.allocation_conflict_retry_count
    return atomically(services.db, write, retries, operation=operation)


def _check_uuid(value: str, what: str) -> None:
    if not is_uuid_like(value):
        raise HTTPError(400, f"Malformed {what}: {value}")


def home(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /scheduler: the extension's versions."""
    check_accept(req)
    start(req, "versions")
    version = {"id": "v1.0", "min_version": VERSIONS[0], "max_version": VERSIONS[-1]}
    send_json(resp, {"versions": [{**version, "status": "CURRENT", "links": []}]})


def select(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/select_destinations: choose hosts and claim them (or explain)."""
    version = start(req, "select_destinations")
    body = extract_json(req, versioned(schemas.SELECT, version))
    spec = from_body(body)
    c = ctx(req)
    try:
        answer = select_destinations(c.services, spec)
    except NoValidHost as exc:
        explanation = exc.explanation.as_body() if exc.explanation is not None else None
        error = {
            "status": 409,
            "title": "Conflict",
            "detail": detail_text(409, exc.message),
            "code": exc.code,
            "request_id": c.request_id,
        }
        send_json(resp, {"errors": [error], "explanation": explanation}, status=409)
        return
    # Host names come from the worker's view, as the selection does (no extra read).
    rendered = answer.as_body()
    send_json(resp, rendered)


def show_aggregate(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /scheduler/aggregates/{uuid}/metadata."""
    check_accept(req)
    start(req, "aggregates:show")
    _check_uuid(uuid, "aggregate uuid")
    with ctx(req).services.db.read() as conn:
        metadata = host_attributes.get_aggregate_metadata(conn, uuid)
    send_json(resp, {"metadata": metadata})


def update_aggregate(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """PUT /scheduler/aggregates/{uuid}/metadata: replace the aggregate's metadata."""
    version = start(req, "aggregates:update")
    _check_uuid(uuid, "aggregate uuid")
    metadata = extract_json(req, versioned(schemas.AGGREGATE_METADATA, version))["metadata"]
    changes: list[Change] = []

    def write(conn: Connection) -> None:
        changes.clear()  # a retried transaction notes its changes again
        host_attributes.put_aggregate_metadata(conn, uuid, metadata, changes)

    _write(req, write, "aggregate_metadata")
    ctx(req).services.publish(changes)
    send_json(resp, {"metadata": metadata})


def list_groups(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /scheduler/server_groups (members are listed per group)."""
    found = read(req, "server_groups:list", groups.list_groups)
    send_json(resp, {"server_groups": [g.as_body() | {"members": None} for g in found]})


def create_group(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/server_groups: 201 with the new group."""
    version = start(req, "server_groups:create")
    data = extract_json(req, versioned(schemas.GROUP_CREATE, version))
    rules = data.get("rules") or {}
    spec = ServerGroupSpec(
        uuid=data.get("uuid") or str(uuidlib.uuid4()),
        policy=data["policy"],
        max_server_per_host=rules.get("max_server_per_host"),
        name=data.get("name"),
    )
    credentials = ctx(req).credentials
    project = data.get("project_id", credentials.project_id)
    user = data.get("user_id", credentials.user_id)
    group = _write(req, lambda conn: groups.create(conn, spec, project, user), groups.OPERATION)
    resp.set_header("location", f"{req.root_path or ''}/scheduler/server_groups/{group.uuid}")
    send_json(resp, group.as_body(), status=201)


def show_group(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """GET /scheduler/server_groups/{uuid}: the group with its members' hosts."""
    group = read(req, "server_groups:show", lambda conn: groups.get(conn, uuid))
    send_json(resp, group.as_body())


def delete_group(req: falcon.Request, resp: falcon.Response, uuid: str) -> None:
    """DELETE /scheduler/server_groups/{uuid}."""
    start(req, "server_groups:delete")
    _write(req, lambda conn: groups.delete_group(conn, uuid), groups.OPERATION)
    send_empty(resp)


def put_member(req: falcon.Request, resp: falcon.Response, uuid: str, instance_uuid: str) -> None:
    """PUT /scheduler/server_groups/{uuid}/members/{instance_uuid}: add or move a member."""
    version = start(req, "server_groups:update")
    _check_uuid(instance_uuid, "instance uuid")
    host = extract_json(req, versioned(schemas.MEMBER, version)).get("host")
    _write(req, lambda conn: groups.set_member(conn, uuid, instance_uuid, host), groups.OPERATION)
    send_empty(resp)


def delete_member(
    req: falcon.Request, resp: falcon.Response, uuid: str, instance_uuid: str
) -> None:
    """DELETE /scheduler/server_groups/{uuid}/members/{instance_uuid}."""
    start(req, "server_groups:update")

    def forget(conn: Connection) -> None:
        groups.get(conn, uuid)
        groups.forget(conn, uuid, [instance_uuid])

    _write(req, forget, groups.OPERATION)
    send_empty(resp)
