"""What the multi-host tests write and read through the API: providers, allocations, placements."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database

HEADERS = {
    "x-auth-token": "admin",
    "openstack-api-version": "placement 1.39, scheduler 1.2",
}


def client(base: str, timeout: float = 30.0) -> httpx.Client:
    """An admin client of one host (or of the front)."""
    return httpx.Client(base_url=base, headers=HEADERS, timeout=timeout)


def create_provider(http: httpx.Client, vcpu: int, name: str | None = None) -> str:
    """A root provider with ``vcpu`` VCPU (ratio 1) and 1 GB per VCPU; its uuid."""
    rp = str(uuid.uuid4())
    r = http.post("/resource_providers", json={"name": name or f"cn-{rp}", "uuid": rp})
    assert r.status_code == 200, r.text
    inventories = {
        "VCPU": {"total": vcpu, "allocation_ratio": 1.0},
        "MEMORY_MB": {"total": 1024 * vcpu, "allocation_ratio": 1.0},
    }
    body = {"resource_provider_generation": 0, "inventories": inventories}
    r = http.put(f"/resource_providers/{rp}/inventories", json=body)
    assert r.status_code == 200, r.text
    return rp


def allocation_body(rp: str, vcpu: int) -> dict[str, Any]:
    """A new consumer's allocation of ``vcpu`` VCPU on ``rp``."""
    return {
        "allocations": {rp: {"resources": {"VCPU": vcpu}}},
        "project_id": "p",
        "user_id": "u",
        "consumer_generation": None,
        "consumer_type": "INSTANCE",
    }


def select_body(instance: str, vcpu: int = 1, **more: Any) -> dict[str, Any]:
    """POST /scheduler/select_destinations for one instance of ``vcpu`` VCPU."""
    return {"flavor": {"resources": {"VCPU": vcpu}}, "instance_uuids": [instance], **more}


def candidate_roots(http: httpx.Client, vcpu: int, tree: str | None = None) -> set[str]:
    """Roots of the allocation candidates for ``vcpu`` VCPU (in ``tree`` only, if given)."""
    query = f"resources=VCPU:{vcpu}" + (f"&in_tree={tree}" if tree else "")
    r = http.get(f"/allocation_candidates?{query}")
    assert r.status_code == 200, r.text
    return set(r.json()["provider_summaries"])


def allocations_by_consumer(db: Database) -> dict[str, dict[str, dict[str, int]]]:
    """consumer -> provider uuid -> class name -> used, as the database holds them."""
    A, RP, RC = t.allocations, t.resource_providers, t.resource_classes
    query = select(A.c.consumer_id, RP.c.uuid, RC.c.name, A.c.used).select_from(
        A.join(RP, A.c.resource_provider_id == RP.c.id).join(RC, A.c.resource_class_id == RC.c.id)
    )
    found: dict[str, dict[str, dict[str, int]]] = {}
    with db.read() as conn:
        for consumer, rp, rc, used in conn.execute(query):
            found.setdefault(consumer, {}).setdefault(rp, {})[rc] = int(used)
    return found
