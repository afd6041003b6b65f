"""A berth host cut off from its database refuses what it cannot answer, then catches up.

Two hosts and the HAProxy front on one PostgreSQL.  Host 1's database link
goes down inside its namespace for ``BERTH_TEST_CUT_SECONDS`` (default 8:
longer than ``BERTH_DATABASE_NETWORK_TIMEOUT``, so the connections it had
open die too; ``BERTH_TEST_CUT_SECONDS=60`` runs the issue's full minute,
``berth bench hosts cut RUN 1 --seconds 60`` does it by hand) while host 0
creates providers and fills one of them with allocations.  Meanwhile:

* host 1 answers every request that needs the database (reads from the
  database and from its in-memory index, writes, scheduling, readiness)
  with 503 and Retry-After, never 500 and never a 2xx, each within the
  network timeout plus slack, and the writes it refused are not in the
  database;
* the front stops sending requests to host 1 (its readiness check fails).

When the link is back host 1 is ready again within seconds, and its first
reads show everything host 0 wrote meanwhile: the providers, the
allocations, and the usage its in-memory index (kept by the change feed)
answers allocation candidates from.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from berth.bench import multihost
from tests.helpers import wait_for
from tests.multihost.cloud import (
    allocation_body,
    candidate_roots,
    client,
    create_provider,
    select_body,
)

pytestmark = pytest.mark.namespaces

CUT_SECONDS = float(os.environ.get("BERTH_TEST_CUT_SECONDS", "8"))
NETWORK_TIMEOUT = 5.0  # BERTH_DATABASE_NETWORK_TIMEOUT's default
SLOWEST = NETWORK_TIMEOUT + 5.0  # a busy 2-core machine
VCPU = 8
UNKNOWN = "may or may not have been applied"


@dataclass
class Writes:
    """What host 0 wrote (and had acknowledged) during the cut."""

    providers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)

    def run(self, http: httpx.Client, full: str, stop: threading.Event) -> None:
        """New providers, and allocations of 1 VCPU on ``full`` until it is full."""
        while not stop.is_set():
            self.providers.append(create_provider(http, VCPU))
            if len(self.consumers) < VCPU:
                consumer = str(uuid.uuid4())
                r = http.put(f"/allocations/{consumer}", json=allocation_body(full, 1))
                assert r.status_code == 204, r.text
                self.consumers.append(consumer)
            stop.wait(0.2)


@dataclass
class Answer:
    """One answer of the cut-off host."""

    kind: str
    status: int
    seconds: float
    retry_after: str | None
    body: str
    consumer: str | None = None


def _requests(provider: str) -> dict[str, Callable[[httpx.Client], tuple[httpx.Response, str]]]:
    """Every kind of request the prober sends: (answer, the consumer it wrote, if any)."""

    def write(http: httpx.Client) -> tuple[httpx.Response, str]:
        consumer = str(uuid.uuid4())
        return http.put(f"/allocations/{consumer}", json=allocation_body(provider, 1)), consumer

    def schedule(http: httpx.Client) -> tuple[httpx.Response, str]:
        instance = str(uuid.uuid4())
        return http.post("/scheduler/select_destinations", json=select_body(instance)), instance

    return {
        "providers": lambda http: (http.get("/resource_providers"), ""),
        "provider": lambda http: (http.get(f"/resource_providers/{provider}"), ""),
        "candidates": lambda http: (http.get("/allocation_candidates?resources=VCPU:1"), ""),
        "allocation write": write,
        "select_destinations": schedule,
        "readiness": lambda http: (http.get("/healthcheck/ready"), ""),
    }


def probe(http: httpx.Client, provider: str, answers: list[Answer], stop: threading.Event) -> None:
    """Send each kind of request in turn until told to stop."""
    kinds = _requests(provider)
    while not stop.is_set():
        for kind, send in kinds.items():
            started = time.monotonic()
            r, consumer = send(http)
            answers.append(
                Answer(
                    kind,
                    r.status_code,
                    time.monotonic() - started,
                    r.headers.get("retry-after"),
                    r.text,
                    consumer or None,
                )
            )


def _front_leaves_out_host(front: httpx.Client) -> bool:
    return all(front.get("/resource_providers").status_code == 200 for _ in range(6))


def test_a_host_cut_off_refuses_then_catches_up(postgres_url: str) -> None:
    with multihost.deploy([postgres_url], hosts=2) as run:
        assert run.front_url is not None
        first, cut, front = client(run.urls[0]), client(run.urls[1], 60), client(run.front_url)
        before = [create_provider(first, VCPU) for _ in range(2)]
        full = before[0]
        assert candidate_roots(cut, 1) == set(before)  # host 1's index is loaded

        writes, answers, stop = Writes(), [], threading.Event()
        run.cut(1)
        cut_at = time.monotonic()
        threads = [
            threading.Thread(target=writes.run, args=(first, full, stop)),
            threading.Thread(target=probe, args=(cut, before[1], answers, stop)),
        ]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: _front_leaves_out_host(front), CUT_SECONDS, "the front to drop host 1")
            front_done = time.monotonic() - cut_at
            time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        run.heal(1)
        healed = time.monotonic()
        wait_for(lambda: cut.get("/healthcheck/ready").status_code == 200, 30, "host 1 ready")
        ready = time.monotonic() - healed

        # Host 1's first reads after the cut: everything host 0 wrote meanwhile.
        listed = {p["uuid"] for p in cut.get("/resource_providers").json()["resource_providers"]}
        assert set(writes.providers) <= listed
        for consumer in writes.consumers:
            held = cut.get(f"/allocations/{consumer}").json()["allocations"]
            assert held == {
                full: {"generation": held[full]["generation"], "resources": {"VCPU": 1}}
            }
        usage = cut.get(f"/resource_providers/{full}/usages").json()["usages"]["VCPU"]
        assert usage == len(writes.consumers) == VCPU
        assert candidate_roots(cut, 1) == set(before[1:] + writes.providers)
        # The writes host 1 refused were not made.
        for answer in answers:
            if answer.kind == "allocation write" and UNKNOWN not in answer.body:
                r = first.get(f"/allocations/{answer.consumer}")
                assert r.json()["allocations"] == {}, answer
        for http in (first, cut, front):
            http.close()

    statuses = Counter((a.kind, a.status) for a in answers)
    print(
        f"cut {CUT_SECONDS:g} s: host 1 answered {dict(statuses)}, slowest"
        f" {max(a.seconds for a in answers):.2f} s; the front left it out after"
        f" {front_done:.1f} s; host 0 wrote {len(writes.providers)} providers and"
        f" {len(writes.consumers)} allocations; host 1 ready {ready:.2f} s after the link came back"
    )
    assert {kind for kind, _ in statuses} == set(_requests(full))
    for answer in answers:
        assert answer.status == 503 and answer.retry_after == "2", answer
        assert answer.seconds <= SLOWEST, answer
    assert writes.providers and writes.consumers
