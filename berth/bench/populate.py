"""A target's cloud: replace it with a topology, and count it.

Bulk into the database when the lab can see it (:mod:`berth.bench.cloud_db`),
else through the target's API (:mod:`berth.bench.cloud_api`).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import case, func, select

from berth.bench import cloud, cloud_api, cloud_db
from berth.bench.progress import bar
from berth.bench.targets import Target
from berth.db import tables as t
from berth.db.engine import Database


def populate_target(
    target: Target, topo: cloud.Topology, concurrency: int = 8, show: bool = True
) -> dict[str, Any]:
    """Write ``topo`` to ``target`` (bulk when its database is known); the figures."""
    specs = cloud.build(topo)
    with bar(f"populate {target.name}", len(specs), show) as advance:
        if target.database_url:
            took = cloud_db.into_database(target.database_url, specs, target.schema, True, advance)
            path = "bulk-sql"
        else:
            took = cloud_api.through_api(target.transport(), specs, concurrency, advance)
            path = "api"
    return {
        "providers": len(specs),
        "hosts": topo.host_count,
        "seconds": round(took, 3),
        "providers_per_s": round(len(specs) / took, 1) if took else 0.0,
        "path": path,
    }


def cloud_size(target: Target) -> tuple[int, int]:
    """(root providers, all providers) of the target's cloud, best effort."""
    if target.database_url:
        return _size_in_database(target.database_url)
    status, body = target.transport().request("GET", "/resource_providers")
    if status != 200:
        return -1, -1
    providers = orjson.loads(body)["resource_providers"]
    roots = sum(p.get("root_provider_uuid", p["uuid"]) == p["uuid"] for p in providers)
    return roots, len(providers)


def _size_in_database(database_url: str) -> tuple[int, int]:
    """(root providers, all providers), counted in the database."""
    db = Database(database_url)
    rp = t.resource_providers
    with db.read() as conn:
        roots = func.sum(case((rp.c.id == rp.c.root_provider_id, 1), else_=0))
        n_roots, n_all = conn.execute(select(roots, func.count()).select_from(rp)).one()
    db.dispose()
    return int(n_roots or 0), int(n_all or 0)


def host_count(target: Target) -> int:
    """Root providers of the target's cloud (its hosts, plus any sharing pools)."""
    return cloud_size(target)[0]
