"""``/scheduler/hosts``: host state, in namespaces from scheduler 1.3 on.

* ``GET /scheduler/hosts``: 1.0 to 1.2, every host with operator or compute
  state in 1.0's shape; from 1.3, ``?namespace=&changed_since=`` and every
  host's namespaces.
* ``GET|PUT /scheduler/hosts/{uuid}``: 1.0's fields (``PUT`` writes only the
  fields it names).
* ``GET /scheduler/hosts/{uuid}/state``,
  ``GET|PUT|PATCH|DELETE /scheduler/hosts/{uuid}/state/{namespace}`` (1.3).

Writes to the ``operator`` namespace need ``berth:scheduler:hosts:state:operator``,
to any other ``berth:scheduler:hosts:state:report``; 1.0's ``PUT`` needs
``hosts:update`` and, for the fields it names, the rule of their namespace.
Every write publishes what it changed to the host-state sync backend after
its commit (:func:`_publishing`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar

import falcon
from sqlalchemy import Connection

from berth.api.errors import bad_request
from berth.api.resources.scheduler import _authorize, _write, read, send_json, start
from berth.api.util import check_accept, ctx, extract_json, query_params, send_empty
from berth.scheduler import host_attributes, state_store
from berth.scheduler.host_attributes import OPERATOR_FIELDS
from berth.scheduler.namespaces import OPERATOR
from berth.scheduler.state_store import HostNamespaces, NamespaceState
from berth.schemas import scheduler as schemas
from berth.schemas import versioned
from berth.sync.changes import Change

T = TypeVar("T")
SINCE = (1, 3)
LIST_PARAMS = {"namespace", "changed_since"}


def _write_rule(namespace: str) -> str:
    """The policy action for writing ``namespace``."""
    return "hosts:state:operator" if namespace == OPERATOR else "hosts:state:report"


def _publishing(req: falcon.Request, write: Callable[[Connection, list[Change]], T]) -> T:
    """``write`` in a write transaction (retried as allocations are), then its changes
    published to the sync backend: only those of the attempt that committed."""
    changes: list[Change] = []

    def attempt(conn: Connection) -> T:
        changes.clear()
        return write(conn, changes)

    result = _write(req, attempt, state_store.OPERATION)
    ctx(req).services.publish(changes)
    return result


def _namespaces(found: HostNamespaces) -> dict[str, Any]:
    return {ns: entry.as_body() for ns, entry in sorted(found.items())}


def _one(namespace: str, entry: NamespaceState) -> dict[str, Any]:
    return {"namespace": namespace, **entry.as_body()}


def list_hosts(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /scheduler/hosts: 1.0's attributes, or (1.3) every host's namespaces, filtered."""
    check_accept(req)
    version = start(req, "hosts:list")
    db = ctx(req).services.db
    if not version.matches(SINCE):
        with db.read() as conn:
            hosts = host_attributes.list_hosts(conn)
        send_json(resp, {"hosts": {u: attrs.as_body() for u, attrs in sorted(hosts.items())}})
        return
    namespace, since = _list_filters(req)
    with db.read() as conn:
        found = state_store.list_hosts(conn, namespace, since)
    body = {uuid: {"namespaces": _namespaces(ns)} for uuid, ns in found.items()}
    send_json(resp, {"hosts": body})


def _list_filters(req: falcon.Request) -> tuple[str | None, datetime.datetime | None]:
    """``namespace`` and ``changed_since`` (400 for another parameter or a bad time)."""
    params = query_params(req)
    unknown = sorted(set(params) - LIST_PARAMS)
    if unknown:
        raise bad_request(f"Unknown query parameters: {', '.join(unknown)}")
    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:
        raise bad_request(f"Query parameters given more than once: {', '.join(repeated)}")
    namespace = params.get("namespace", [None])[0]
    since = params.get("changed_since", [None])[0]
    return namespace, _time(since) if since is not None else None


def _time(text: str) -> datetime.datetime:
    """An ISO 8601 time (a ``received_at`` the server gave, or any other) as naive UTC."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"changed_since is not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC).replace(tzinfo=None)
    return when


def show_host(req: falcon.Request, resp: falcon.Response, provider_uuid: str) -> None:
    """GET /scheduler/hosts/{provider_uuid}: 1.0's fields."""
    attrs = read(req, "hosts:show", lambda conn: host_attributes.get_host(conn, provider_uuid))
    send_json(resp, attrs.as_body())


def update_host(req: falcon.Request, resp: falcon.Response, provider_uuid: str) -> None:
    """PUT /scheduler/hosts/{provider_uuid}: write the 1.0 fields named, and only those."""
    version = start(req, "hosts:update")
    fields = extract_json(req, versioned(schemas.HOST, version))
    if any(name in fields for name in OPERATOR_FIELDS):
        _authorize(req, _write_rule(OPERATOR), None)
    if "metrics" in fields:
        _authorize(req, _write_rule("compute"), None)
    rules = ctx(req).services.state_rules
    attrs = _publishing(
        req,
        lambda conn, changes: host_attributes.put_host(conn, rules, provider_uuid, fields, changes),
    )
    send_json(resp, attrs.as_body())


def show_state(req: falcon.Request, resp: falcon.Response, provider_uuid: str) -> None:
    """GET /scheduler/hosts/{provider_uuid}/state: every namespace of the host."""
    found = read(req, "hosts:show", lambda conn: state_store.get_host(conn, provider_uuid), SINCE)
    send_json(resp, {"provider_uuid": provider_uuid, "namespaces": _namespaces(found)})


def show_namespace(
    req: falcon.Request, resp: falcon.Response, provider_uuid: str, namespace: str
) -> None:
    """GET /scheduler/hosts/{provider_uuid}/state/{namespace}."""
    entry = read(
        req,
        "hosts:show",
        lambda conn: state_store.get_one(conn, provider_uuid, namespace),
        SINCE,
    )
    send_json(resp, _one(namespace, entry))


def _replace_or_patch(
    req: falcon.Request,
    resp: falcon.Response,
    provider_uuid: str,
    namespace: str,
    write: Callable[..., Any],
) -> None:
    """PUT and PATCH of a namespace: the body ``{"generation", "state"}`` given to ``write``
    (:func:`state_store.put` or :func:`state_store.patch`) in one write transaction."""
    version = start(req, _write_rule(namespace), SINCE)
    body = extract_json(req, versioned(schemas.HOST_STATE_WRITE, version))
    rules = ctx(req).services.state_rules
    entry = _publishing(
        req,
        lambda conn, changes: write(
            conn, rules, provider_uuid, namespace, body["state"], body["generation"], changes
        ),
    )
    send_json(resp, _one(namespace, entry))


def put_namespace(
    req: falcon.Request, resp: falcon.Response, provider_uuid: str, namespace: str
) -> None:
    """PUT .../state/{namespace} ``{"generation", "state"}``: replace the object."""
    _replace_or_patch(req, resp, provider_uuid, namespace, state_store.put)


def patch_namespace(
    req: falcon.Request, resp: falcon.Response, provider_uuid: str, namespace: str
) -> None:
    """PATCH .../state/{namespace} ``{"generation", "state"}``: ``state`` is a JSON merge
    patch (RFC 7396) of the object."""
    _replace_or_patch(req, resp, provider_uuid, namespace, state_store.patch)


def delete_namespace(
    req: falcon.Request, resp: falcon.Response, provider_uuid: str, namespace: str
) -> None:
    """DELETE .../state/{namespace}: 204, the namespace holds nothing any more."""
    start(req, _write_rule(namespace), SINCE)
    _publishing(
        req,
        lambda conn, changes: state_store.delete_one(conn, provider_uuid, namespace, changes),
    )
    send_empty(resp)
