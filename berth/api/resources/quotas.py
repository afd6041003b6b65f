"""``/scheduler/quotas/{project_id}[/users/{user_id}]``: quota limits and usage
(scheduler 1.1; 404 at 1.0).

GET shows a scope's limits and its usage, PUT replaces its limits (and
answers as GET), DELETE removes them.  The domain is
:mod:`berth.scheduler.quotas`; the first steps (version, policy) are the
extension's own (:mod:`berth.api.resources.scheduler`).
"""

from __future__ import annotations

import falcon
from sqlalchemy import Connection

from berth.api.resources.scheduler import read, send_json, start
from berth.api.util import extract_json, send_empty, write
from berth.scheduler import quotas
from berth.scheduler.quotas import Scope, Usage
from berth.schemas import scheduler as schemas
from berth.schemas import versioned

SINCE = (1, 1)


def _target(scope: Scope) -> dict[str, str | None]:
    """The policy target: the scope's project (and user), so a rule may say whose."""
    return {"project_id": scope.project_id, "user_id": scope.user_id}


def render(scope: Scope, limits: dict[str, int], usage: Usage) -> dict[str, object]:
    """The JSON of a scope: its limits, and per resource what is in use and reserved."""
    resources = sorted(usage.resources() | set(limits))
    body: dict[str, object] = {"project_id": scope.project_id}
    if scope.user_id is not None:
        body["user_id"] = scope.user_id
    body["limits"] = limits
    body["usage"] = {
        r: {"in_use": usage.in_use.get(r, 0), "reserved": usage.reserved.get(r, 0)}
        for r in resources
    }
    return body


def _state(conn: Connection, scope: Scope) -> dict[str, object]:
    return render(scope, quotas.get_limits(conn, scope), quotas.usage(conn, scope))


def _show(req: falcon.Request, resp: falcon.Response, scope: Scope) -> None:
    body = read(req, "quotas:show", lambda conn: _state(conn, scope), SINCE, _target(scope))
    send_json(resp, body)


def _update(req: falcon.Request, resp: falcon.Response, scope: Scope) -> None:
    version = start(req, "quotas:update", SINCE, _target(scope))
    limits = extract_json(req, versioned(schemas.QUOTA_LIMITS, version))["limits"]

    def replace(conn: Connection) -> dict[str, object]:
        quotas.set_limits(conn, scope, limits)
        return _state(conn, scope)

    send_json(resp, write(req, replace, operation=quotas.OPERATION))


def _delete(req: falcon.Request, resp: falcon.Response, scope: Scope) -> None:
    start(req, "quotas:delete", SINCE, _target(scope))
    write(req, lambda conn: quotas.delete_limits(conn, scope), operation=quotas.OPERATION)
    send_empty(resp)


def show_project(req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
    """GET /scheduler/quotas/{project_id}: the project's own limits and its usage."""
    _show(req, resp, Scope(project_id))


def update_project(req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
    """PUT /scheduler/quotas/{project_id}: replace the project's own limits."""
    _update(req, resp, Scope(project_id))


def delete_project(req: falcon.Request, resp: falcon.Response, project_id: str) -> None:
    """DELETE /scheduler/quotas/{project_id}: no project-wide limit (users' stay)."""
    _delete(req, resp, Scope(project_id))


def show_user(req: falcon.Request, resp: falcon.Response, project_id: str, user_id: str) -> None:
    """GET /scheduler/quotas/{project_id}/users/{user_id}: the user's limits and usage."""
    _show(req, resp, Scope(project_id, user_id))


def update_user(req: falcon.Request, resp: falcon.Response, project_id: str, user_id: str) -> None:
    """PUT /scheduler/quotas/{project_id}/users/{user_id}: replace the user's limits."""
    _update(req, resp, Scope(project_id, user_id))


def delete_user(req: falcon.Request, resp: falcon.Response, project_id: str, user_id: str) -> None:
    """DELETE /scheduler/quotas/{project_id}/users/{user_id}: no limit for the user."""
    _delete(req, resp, Scope(project_id, user_id))
