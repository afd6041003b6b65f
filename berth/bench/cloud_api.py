"""Write a benchmark cloud through any Placement API, and empty one the same way.

:func:`through_api` creates each provider with the API calls a deployment
would make (provider, inventories, traits, aggregates), many at a time;
parents are created before their children.  :func:`clear_through_api`
deletes every allocation and provider first (leaves first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from berth.bench.cloud import ProviderSpec
from berth.bench.transport import Transport, json_of

Advance = Callable[[int], None]


def _create(transport: Transport, spec: ProviderSpec, parent_uuid: str | None) -> None:
    """One provider with its inventories, traits and aggregates, as a deployment would."""
    body: dict[str, object] = {"name": spec.name, "uuid": spec.uuid}
    if parent_uuid:
        body["parent_provider_uuid"] = parent_uuid
    json_of(*transport.request("POST", "/resource_providers", body), f"create {spec.name}")
    generation = 0
    path = f"/resource_providers/{spec.uuid}"
    if spec.inventories:
        inventories = {
            rc: dict(
                zip(
                    ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio"),
                    inv,
                    strict=True,
                )
            )
            for rc, inv in spec.inventories.items()
        }
        body = {"resource_provider_generation": generation, "inventories": inventories}
        got = json_of(*transport.request("PUT", path + "/inventories", body), "inventories")
        generation = got["resource_provider_generation"]
    if spec.traits:
        body = {"resource_provider_generation": generation, "traits": sorted(spec.traits)}
        got = json_of(*transport.request("PUT", path + "/traits", body), "traits")
        generation = got["resource_provider_generation"]
    if spec.aggregates:
        body = {"resource_provider_generation": generation, "aggregates": sorted(spec.aggregates)}
        json_of(*transport.request("PUT", path + "/aggregates", body), "aggregates")


def through_api(
    transport: Transport,
    specs: Sequence[ProviderSpec],
    concurrency: int = 8,
    advance: Advance | None = None,
) -> float:
    """Replace the cloud with ``specs`` through the API, ``concurrency`` at a time.

    Returns the seconds the writes took (emptying the old cloud first is not counted).
    """
    clear_through_api(transport, concurrency)
    started = time.monotonic()
    for name in sorted({t for s in specs for t in s.traits if t.startswith("CUSTOM_")}):
        status, body = transport.request("PUT", f"/traits/{name}")
        if status not in (201, 204):
            raise RuntimeError(f"create trait {name}: HTTP {status}: {body[:200]!r}")
    depth = _depths(specs)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for level in sorted(set(depth)):
            wave = [i for i, d in enumerate(depth) if d == level]

            def one(i: int) -> None:
                """Create spec ``i`` under its parent."""
                parent = specs[i].parent
                _create(transport, specs[i], specs[parent].uuid if parent is not None else None)
                if advance:
                    advance(1)

            list(pool.map(one, wave))
    return time.monotonic() - started


def _pool_map(concurrency: int, work: Callable[[str], object], items: Sequence[str]) -> None:
    """``work`` on every item, ``concurrency`` at a time."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(work, items))


def clear_through_api(transport: Transport, concurrency: int = 8) -> int:
    """Delete every allocation and provider through the API (leaves first); providers deleted."""
    listing = json_of(*transport.request("GET", "/resource_providers"), "list providers")
    providers = listing["resource_providers"]
    consumers: set[str] = set()

    def allocations_of(uuid: str) -> None:
        """Collect the consumers with allocations on provider ``uuid``."""
        found = json_of(*transport.request("GET", f"/resource_providers/{uuid}/allocations"), uuid)
        consumers.update(found["allocations"])

    def delete(path: str) -> None:
        """DELETE ``path``; already gone is fine."""
        status, body = transport.request("DELETE", path)
        if status not in (204, 404):
            raise RuntimeError(f"DELETE {path}: HTTP {status}: {body[:200]!r}")

    _pool_map(concurrency, allocations_of, [p["uuid"] for p in providers])
    _pool_map(concurrency, lambda c: delete(f"/allocations/{c}"), sorted(consumers))
    parent = {p["uuid"]: p.get("parent_provider_uuid") for p in providers}
    depth: dict[str, int] = {}
    for uuid in parent:
        d, up = 0, parent[uuid]
        while up:
            d, up = d + 1, parent.get(up)
        depth[uuid] = d
    for level in sorted(set(depth.values()), reverse=True):
        wave = [u for u, d in depth.items() if d == level]
        _pool_map(concurrency, lambda u: delete(f"/resource_providers/{u}"), wave)
    return len(providers)


def _depths(specs: Sequence[ProviderSpec]) -> list[int]:
    """How deep each spec is in its tree (0: a root)."""
    depth: list[int] = []
    for spec in specs:
        depth.append(0 if spec.parent is None else depth[spec.parent] + 1)
    return depth
