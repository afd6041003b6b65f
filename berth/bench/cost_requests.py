"""The request kinds ``berth bench cost`` measures: one small class each, registered by name.

==============  ==========================================================================
``candidates``  ``GET /allocation_candidates?resources=VCPU:v,MEMORY_MB:m&limit=50``, one of
                placement-bench's six sizes at random
``claim``       ``PUT /allocations/{new consumer}``: 1 VCPU and 512 MB on a host of its own
                (no candidates read first: the claim alone)
``delete``      ``DELETE /allocations/{consumer}`` of the consumers ``claim`` made
``select``      ``POST /scheduler/select_destinations``, one instance of a random size
                (berth only)
``host-state``  ``PUT /scheduler/hosts/{uuid}/state/compute`` with a few metrics, each
                client thread updating its own hosts in turn with the generations the
                answers give (berth only; scheduler 1.3)
``register``    ``POST /resource_providers``, then ``PUT .../inventories`` of a
                placement-bench host: two calls per operation
``provider``    ``GET /resource_providers/{uuid}`` of a host
``usages``      ``GET /usages?project_id=`` of the lab's project
==============  ==========================================================================

A client thread works in a :class:`Slot`: thread *s* of *S* touches hosts *s*,
*s + S*, *s + 2S* ... of the cloud, so no two threads write the same host and
a claim is never refused for capacity.  Every class answers the status of
its last call; 2xx is success.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from berth.bench import cloud, register, strategies
from berth.bench.claimers import PROJECT, USER
from berth.bench.transport import MICROVERSION, Transport

HOST_STATE_HOSTS = 16  # hosts each client thread keeps updating (written once before the clock)
CLAIM = {"VCPU": 1, "MEMORY_MB": 512}


@dataclass(frozen=True)
class Slot:
    """Where one client thread works: its number among all of them, the cloud, its consumers."""

    index: int
    count: int
    hosts: int  # the cloud's hosts are cloud.host_uuid(0 .. hosts - 1)
    limit: int = 50
    consumers: tuple[str, ...] = ()  # delete: the consumers this thread removes

    def host(self, n: int) -> str:
        """The host of this thread's ``n``-th operation."""
        return cloud.host_uuid((self.index + n * self.count) % max(1, self.hosts))


class Request:
    """One kind of request; ``__call__(n)`` makes operation ``n`` and answers its status."""

    name: ClassVar[str] = ""
    calls: ClassVar[int] = 1  # HTTP calls per operation
    berth_only: ClassVar[bool] = False  # berth's scheduler API
    headers: ClassVar[dict[str, str]] = {}  # replacing the transport's fixed ones

    def __init__(self, transport: Transport, slot: Slot, rng: random.Random) -> None:
        self.transport = transport
        self.slot = slot
        self.rng = rng
        self.created: list[str] = []  # consumers made (claim)

    def warmup(self, asked: int) -> int:
        """Operations to make before the clock starts."""
        return asked

    def capacity(self) -> int | None:
        """The most operations this thread can make in all (None: no bound)."""
        return None

    def __call__(self, n: int) -> int:
        raise NotImplementedError


class Candidates(Request):
    """GET /allocation_candidates with a limit, a random size."""

    name = "candidates"

    def __call__(self, n: int) -> int:
        size = strategies.request_size(self.rng)
        query = "resources=" + ",".join(f"{rc}:{v}" for rc, v in size.items())
        if self.slot.limit:
            query += f"&limit={self.slot.limit}"
        return self.transport.request("GET", "/allocation_candidates?" + query)[0]


class Claim(Request):
    """PUT /allocations/{new consumer} on this thread's next host."""

    name = "claim"

    def __call__(self, n: int) -> int:
        consumer = str(uuidlib.uuid4())
        body = {
            "allocations": {self.slot.host(n): {"resources": CLAIM}},
            "project_id": PROJECT,
            "user_id": USER,
            "consumer_generation": None,
            "consumer_type": "INSTANCE",
        }
        status = self.transport.request("PUT", f"/allocations/{consumer}", body)[0]
        if status == 204:
            self.created.append(consumer)
        return status


class Delete(Request):
    """DELETE /allocations/{consumer} of the consumers a claim run made."""

    name = "delete"

    def capacity(self) -> int:
        return len(self.slot.consumers)

    def __call__(self, n: int) -> int:
        return self.transport.request("DELETE", f"/allocations/{self.slot.consumers[n]}")[0]


class Select(Request):
    """POST /scheduler/select_destinations for one instance."""

    name = "select"
    berth_only = True

    def __call__(self, n: int) -> int:
        body = {
            "flavor": {"resources": strategies.request_size(self.rng)},
            "project_id": PROJECT,
            "user_id": USER,
        }
        return self.transport.request("POST", "/scheduler/select_destinations", body)[0]


class HostState(Request):
    """PUT /scheduler/hosts/{uuid}/state/compute, with the generation the last answer gave."""

    name = "host-state"
    berth_only = True
    headers = {"openstack-api-version": f"{MICROVERSION}, scheduler 1.3"}

    def __init__(self, transport: Transport, slot: Slot, rng: random.Random) -> None:
        super().__init__(transport, slot, rng)
        self.generations: dict[str, int] = {}

    def warmup(self, asked: int) -> int:
        return max(asked, HOST_STATE_HOSTS)  # every host written once: the clock sees updates

    def __call__(self, n: int) -> int:
        host = self.slot.host(n % HOST_STATE_HOSTS)
        path = f"/scheduler/hosts/{host}/state/compute"
        metrics = {"cpu.percent": round(self.rng.uniform(0, 100), 1),
                   "memory.used_mb": self.rng.randrange(0, 262144)}  # fmt: skip
        for _ in range(2):  # another writer moved the generation: read it, try once more
            body = {"generation": self.generations.get(host, 0), "state": {"metrics": metrics}}
            status, raw = self.transport.request("PUT", path, body)
            if status != 409:
                break
            status, raw = self.transport.request("GET", path)
            if status != 200:
                return status
            self.generations[host] = int(orjson.loads(raw)["generation"])
        if status == 200:
            self.generations[host] = int(orjson.loads(raw)["generation"])
        return status


_HOST = register.host_specs(1)[0]


class Register(Request):
    """POST /resource_providers, then PUT its inventories (a placement-bench host)."""

    name = "register"
    calls = 2

    def __call__(self, n: int) -> int:
        rp = str(uuidlib.uuid4())
        body: dict[str, Any] = {"name": f"cost-{rp}", "uuid": rp}
        status, raw = self.transport.request("POST", "/resource_providers", body)
        if status != 200:
            return status
        generation = int(orjson.loads(raw).get("generation", 0))
        body = {"resource_provider_generation": generation,
                "inventories": register.inventories_of(_HOST)}  # fmt: skip
        return self.transport.request("PUT", f"/resource_providers/{rp}/inventories", body)[0]


class Provider(Request):
    """GET /resource_providers/{uuid} of a host."""

    name = "provider"

    def __call__(self, n: int) -> int:
        return self.transport.request("GET", f"/resource_providers/{self.slot.host(n)}")[0]


class Usages(Request):
    """GET /usages of the lab's project (what its claims and selections hold)."""

    name = "usages"

    def __call__(self, n: int) -> int:
        return self.transport.request("GET", f"/usages?project_id={PROJECT}")[0]


# In the order a run measures them: claim before delete (it deletes what claim made),
# usages after the claims and selections, registration last (it grows the cloud).
REQUESTS: dict[str, type[Request]] = {
    cls.name: cls
    for cls in (Candidates, Claim, Delete, Select, Usages, Provider, HostState, Register)
}
