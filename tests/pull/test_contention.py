"""Many threads enqueueing for one project at once, over HTTP, on every database.

THREADS threads meet at a barrier and each sends ROUNDS ``POST
/scheduler/requests`` of one instance for the same project and user.  With
room for all of them, every one is accepted (202): a reservation waits for
the project's previous one instead of losing a race and running out of
retries (409 ``placement.concurrent_update``).  With room for ROOM, exactly
ROOM are accepted and every other one is refused as over quota, never as a
conflict.  NATS is a closed port here: the messages are the sweeper's
business, the quota is the point.
"""

from __future__ import annotations

import threading
from collections import Counter

import falcon.testing

from berth.db.engine import Database
from berth.scheduler import quotas
from berth.scheduler.quotas import Scope
from tests.pull.conftest import MakeClient
from tests.pull.helpers import enqueue, flavor, states

THREADS = 16
ROUNDS = 2
ROOM = 5
CLOSED_NATS = "nats://127.0.0.1:1"


def _code(got: falcon.testing.Result) -> str:
    """The error code of a refusal (its body's text when it has none)."""
    errors = (got.json or {}).get("errors") if got.text.startswith("{") else None
    return str(errors[0].get("code") or errors[0].get("detail")) if errors else got.text[:200]


def _race(client: falcon.testing.TestClient) -> Counter[str]:
    """Every thread's answers, as status and error code (or "202")."""
    start = threading.Barrier(THREADS)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def run() -> None:
        start.wait(timeout=30)
        for _ in range(ROUNDS):
            try:
                got = enqueue(client, flavor="small")
                code = "" if got.status_code == 202 else _code(got)
                outcome = f"{got.status_code} {code}".strip()
            except Exception as exc:  # counted, so that the assertion shows it
                outcome = repr(exc)
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_concurrent_enqueues_of_one_project_all_succeed(
    db: Database, make_client: MakeClient
) -> None:
    client = make_client(CLOSED_NATS)
    flavor(client, "small", {"VCPU": 1})
    with db.write() as conn:
        quotas.set_limits(conn, Scope("p1"), {"instances": 1000, "VCPU": 1000})
    outcomes = _race(client)
    assert outcomes == {"202": THREADS * ROUNDS}, outcomes
    assert states(db) == {"queued": THREADS * ROUNDS}
    with db.read() as conn:
        usage = quotas.usage(conn, Scope("p1", "u1"))
    assert usage.reserved == {"instances": THREADS * ROUNDS, "VCPU": THREADS * ROUNDS}


def test_concurrent_enqueues_never_pass_the_last_unit(
    db: Database, make_client: MakeClient
) -> None:
    client = make_client(CLOSED_NATS)
    flavor(client, "small", {"VCPU": 1})
    with db.write() as conn:
        quotas.set_limits(conn, Scope("p1"), {"instances": ROOM})
    outcomes = _race(client)
    refused = THREADS * ROUNDS - ROOM
    assert outcomes == {"202": ROOM, "409 berth.scheduler.quota_exceeded": refused}, outcomes
    assert states(db) == {"queued": ROOM}
