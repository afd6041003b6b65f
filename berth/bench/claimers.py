"""One scheduler's way of claiming a host for one instance, per kind of target.

``SchedulerClaimer``      berth's scheduler in this process (``select_destinations``)
``SchedulerHttpClaimer``  berth's scheduler over HTTP (``POST /scheduler/select_destinations``)
``PlacementClaimer``      any Placement: ``GET /allocation_candidates`` (``limit``),
                          choose by strategy and partition, ``PUT /allocations/{new
                          consumer}``; on a 409 sleep 10-100 ms and start again, at
                          most 5 times (placement-bench's client; with ``strict``
                          partitions only this client's own hosts are candidates,
                          none of them fitting is "no host"); with a ``delay`` it is the
                          old design instead: the scheduler selects, the compute
                          host claims ``delay`` later, a collision reschedules

Each :meth:`claim` answers an :class:`Attempt`: claimed or not, and why not.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from berth.bench import strategies
from berth.bench.transport import Transport

PROJECT = "bench-project"
USER = "bench-user"


@dataclass
class Attempt:
    """The outcome of one instance's scheduling."""

    claimed: int = 0  # instances placed (0 or 1, or up to the batch for berth's scheduler)
    host: str = ""
    conflicts: int = 0  # claims refused or lost to another writer
    retries: int = 0  # claims tried again (another host or another round)
    gave_up: bool = False  # conflicts until the retry budget ran out
    no_host: bool = False  # nothing fits (the cloud is full for this size)
    errors: int = 0  # 5xx answers (retried)


class Claimer(Protocol):
    """Schedules one instance at a time."""

    def claim(self, resources: dict[str, int], rng: random.Random) -> Attempt:
        """Place one instance of ``resources``."""
        ...


class SchedulerClaimer:
    """berth's scheduler in process: selection from memory, the claim in the database."""

    def __init__(self, database_url: str, overrides: dict[str, Any], batch: int = 1) -> None:
        from berth import settings as settings_mod
        from berth.logging import configure
        from berth.services import Services

        settings = settings_mod.load(
            database_url=database_url, log_level="ERROR", log_requests=False, **overrides
        )
        configure(settings)
        self.services = Services.from_settings(settings)
        self.batch = batch

    def warm_up(self) -> None:
        """Load the in-memory index before the clock starts."""
        from berth.scheduler import NoValidHost, RequestSpec, select_destinations

        spec = RequestSpec({"VCPU": 1, "MEMORY_MB": 64}, dry_run=True, project_id=PROJECT)
        with contextlib.suppress(NoValidHost):
            select_destinations(self.services, spec)

    def claim(self, resources: dict[str, int], rng: random.Random) -> Attempt:
        """One select_destinations call (for ``batch`` instances)."""
        from berth.scheduler import NoValidHost, RequestSpec, select_destinations

        spec = RequestSpec(
            dict(resources), num_instances=self.batch, project_id=PROJECT, user_id=USER
        )
        try:
            answer = select_destinations(self.services, spec)
        except NoValidHost as exc:
            refused = "refused" in exc.message
            return Attempt(gave_up=refused, no_host=not refused)
        conflicts = answer.lost_races + answer.refused
        host = answer.selections[0].host_uuid if answer.selections else ""
        return Attempt(len(answer.selections), host, conflicts, conflicts)


class SchedulerHttpClaimer:
    """berth's scheduler over HTTP."""

    def __init__(self, transport: Transport, batch: int = 1) -> None:
        self.transport = transport
        self.batch = batch

    def warm_up(self) -> None:
        """One dry run, so every server worker has its index loaded early."""
        body = {"flavor": {"resources": {"VCPU": 1}}, "dry_run": True, "project_id": PROJECT}
        self.transport.request("POST", "/scheduler/select_destinations", body)

    def claim(self, resources: dict[str, int], rng: random.Random) -> Attempt:
        """One POST /scheduler/select_destinations (for ``batch`` instances)."""
        body: dict[str, Any] = {
            "flavor": {"resources": resources},
            "project_id": PROJECT,
            "user_id": USER,
        }
        if self.batch != 1:
            body["num_instances"] = self.batch
        status, raw = self.transport.request("POST", "/scheduler/select_destinations", body)
        if status == 409:
            refused = b"refused" in raw
            return Attempt(gave_up=refused, no_host=not refused)
        if status >= 500:
            return Attempt(errors=1)
        if status != 200:
            raise RuntimeError(f"select_destinations: HTTP {status}: {raw[:300]!r}")
        answer = orjson.loads(raw)
        conflicts = answer.get("lost_races", 0) + answer.get("refused_claims", 0)
        host = answer["selections"][0]["host"]["uuid"] if answer["selections"] else ""
        return Attempt(len(answer["selections"]), host, conflicts, conflicts)


class PlacementClaimer:
    """placement-bench's client against any Placement API."""

    def __init__(
        self,
        transport: Transport,
        strategy: str,
        partitioning: str,
        index: int,
        count: int,
        limit: int = 0,
        attempts: int = 5,
        delay: float = 0.0,
    ) -> None:
        self.transport = transport
        self.strategy = strategy
        self.owner = strategies.owner_function(partitioning, count)
        self.partitioned = partitioning != "none" and count > 1
        self.strict = partitioning == "strict"
        self.me = index
        self.limit = limit
        self.attempts = attempts
        # The old design (compute-claims): the compute host claims ``delay`` seconds
        # after the scheduler chose it, and a collision reschedules at once.
        self.delay = delay

    def warm_up(self) -> None:
        """One read, so connections are open before the clock starts."""
        self.candidates({"VCPU": 1, "MEMORY_MB": 64})

    def candidates(self, resources: dict[str, int]) -> list[tuple[str, dict[str, Any], Any]] | None:
        """(host uuid, allocations, summary) per candidate; None on a server error."""
        query = "resources=" + ",".join(f"{rc}:{n}" for rc, n in resources.items())
        if self.limit:
            query += f"&limit={self.limit}"
        status, raw = self.transport.request("GET", "/allocation_candidates?" + query)
        if status >= 500:
            return None
        if status != 200:
            raise RuntimeError(f"allocation_candidates: HTTP {status}: {raw[:300]!r}")
        body = orjson.loads(raw)
        summaries = body["provider_summaries"]
        out = []
        for request in body["allocation_requests"]:
            allocations = request["allocations"]
            first = next(iter(allocations))
            summary = summaries.get(first, {})
            out.append((summary.get("root_provider_uuid", first), allocations, summary))
        return out

    def _ranked(
        self, found: list[tuple[str, dict[str, Any], Any]], resources: dict[str, int], rng: Any
    ) -> list[int]:
        """Indices of ``found``, best first: by strategy, then this worker's hosts first.

        Strict partitions: this worker's hosts only (possibly none).
        """
        kept = [i for i, (host, _, _) in enumerate(found)
                if not self.strict or self.owner(host) == self.me]  # fmt: skip
        pairs = [(found[i][0], found[i][2]) for i in kept]
        ranked = [kept[j] for j in strategies.order(pairs, resources, self.strategy, rng)]
        if self.partitioned and not self.strict:
            hosts = [host for host, _, _ in found]
            ranked = strategies.mine_first(ranked, hosts, self.owner, self.me)
        return ranked

    def claim(self, resources: dict[str, int], rng: random.Random) -> Attempt:
        """Read candidates, claim the best; on a conflict wait 10-100 ms and start over.

        A 5xx answer (the reference on SQLite: "database is locked") is counted as a
        server error and retried like a conflict.
        """
        attempt = Attempt()
        for round_ in range(self.attempts):
            found = self.candidates(resources)
            ranked = self._ranked(found, resources, rng) if found else []
            if found is None:
                attempt.errors += 1
            elif not ranked:
                attempt.no_host = True
                return attempt
            else:
                host, allocations, _ = found[ranked[0]]
                if self.delay:
                    time.sleep(self.delay)
                status = self._put(allocations)
                if status == 204:
                    attempt.claimed, attempt.host = 1, host
                    return attempt
                attempt.conflicts += status == 409
                attempt.errors += status >= 500
            if round_ + 1 < self.attempts:
                attempt.retries += 1
                if not self.delay:
                    time.sleep(rng.uniform(0.010, 0.100))
        attempt.gave_up = True
        return attempt

    def _put(self, allocations: dict[str, Any]) -> int:
        """Claim for a new consumer: 204, 409 (conflict) or 5xx; anything else is a bug."""
        body = {
            "allocations": {rp: {"resources": v["resources"]} for rp, v in allocations.items()},
            "project_id": PROJECT,
            "user_id": USER,
            "consumer_generation": None,
            "consumer_type": "INSTANCE",  # required from microversion 1.38
        }
        status, raw = self.transport.request("PUT", f"/allocations/{uuidlib.uuid4()}", body)
        if status not in (204, 409) and status < 500:
            raise RuntimeError(f"PUT allocations: HTTP {status}: {raw[:300]!r}")
        return status
