"""``/scheduler/pull/...``: what host agents call (scheduler 1.2; docs/pull.md).

Each call carries a batch, so that one HTTP request serves many hosts.
Policy: ``berth:scheduler:pull:agent`` (admin or service by default).  The
domain is :mod:`berth.pull` (claims, agents, queues).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence

import falcon

from berth.api.resources.scheduler import send_json, start
from berth.api.util import check_accept, ctx, extract_json, send_empty, write
from berth.pull import agents, claims, queues
from berth.pull.agents import Report
from berth.pull.claims import ClaimItem, Result
from berth.schemas import scheduler as schemas
from berth.schemas import versioned

SINCE = (1, 2)
ACTION = "pull:agent"
OPERATION = "pull_agents"


def _uuid(value: str) -> str:
    """A schema-checked uuid in its canonical form (as berth stores them)."""
    return str(uuidlib.UUID(value))


def _results(resp: falcon.Response, results: Sequence[Result]) -> None:
    send_json(resp, {"results": [r.as_body() for r in results]})


def heartbeat(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/pull/heartbeat: ``agent`` runs ``hosts`` and is alive (204)."""
    version = start(req, ACTION, SINCE)
    body = extract_json(req, versioned(schemas.HEARTBEAT, version))
    agent, hosts = body["agent"], [_uuid(h) for h in body["hosts"]]
    write(req, lambda conn: agents.heartbeat(conn, agent, hosts), operation=OPERATION)
    pull = ctx(req).services.pull
    pull.first_use()  # the queues in NATS before agents look for them
    pull.agent_seen(agent)
    send_empty(resp)


def claim(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/pull/claims: a result per claim (claimed, taken, full, group)."""
    version = start(req, ACTION, SINCE)
    body = extract_json(req, versioned(schemas.CLAIMS, version))
    items = [
        ClaimItem(_uuid(c["instance"]), _uuid(c["host"]), c["attempt"]) for c in body["claims"]
    ]
    services = ctx(req).services
    retries = services.settings.scheduler_claim_retries
    _results(resp, claims.claim(services.db, items, retries, services.pull.owners))


def _reports(req: falcon.Request) -> list[Report]:
    version = start(req, ACTION, SINCE)
    body = extract_json(req, versioned(schemas.HOST_REPORTS, version))
    return [Report(_uuid(i["instance"]), _uuid(i["host"])) for i in body["instances"]]


def active(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/pull/active: a result per instance (active or taken)."""
    reports = _reports(req)
    _results(resp, write(req, lambda conn: agents.activate(conn, reports), operation=OPERATION))


def deleted(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /scheduler/pull/deleted: a result per instance (deleted or taken)."""
    reports = _reports(req)
    _results(resp, write(req, lambda conn: agents.deleted(conn, reports), operation=OPERATION))


def list_queues(req: falcon.Request, resp: falcon.Response) -> None:
    """GET /scheduler/pull/queues: every queue's JSON."""
    check_accept(req)
    start(req, ACTION, SINCE)
    services = ctx(req).services
    with services.db.read() as conn:
        found = queues.list_queues(conn)
    send_json(resp, {"queues": [q.as_body() for q in found]})
