"""The check after every claims run: no provider is over capacity.

usage <= (total - reserved) * allocation_ratio for every provider and
class.  Straight from the database when the lab can see it (one grouped
query, the same on berth's tables and Placement's), else through the API
(inventories and usages of every provider).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select

from berth.bench.transport import Transport, json_of
from berth.db import tables as t
from berth.db.engine import Database


def over_capacity_sql(database_url: str) -> list[dict[str, Any]]:
    """Providers and classes whose usage exceeds capacity, from the database."""
    a, i, rp = t.allocations, t.inventories, t.resource_providers
    used = (
        select(
            a.c.resource_provider_id.label("rp"),
            a.c.resource_class_id.label("rc"),
            func.sum(a.c.used).label("used"),
        )
        .group_by(a.c.resource_provider_id, a.c.resource_class_id)
        .subquery()
    )
    query = (
        select(rp.c.uuid, i.c.resource_class_id, used.c.used, i.c.total, i.c.reserved)
        .select_from(used)
        .join(i, (i.c.resource_provider_id == used.c.rp) & (i.c.resource_class_id == used.c.rc))
        .join(rp, rp.c.id == used.c.rp)
        .where(used.c.used > (i.c.total - i.c.reserved) * i.c.allocation_ratio)
    )
    db = Database(database_url)
    try:
        with db.read() as conn:
            rows = conn.execute(query).all()
    finally:
        db.dispose()
    return [
        {"provider": u, "class_id": rc, "used": int(n), "total": total, "reserved": reserved}
        for u, rc, n, total, reserved in rows
    ]


def _provider_excess(transport: Transport, uuid: str) -> list[dict[str, Any]]:
    """The classes of provider ``uuid`` used beyond capacity, through the API."""
    base = f"/resource_providers/{uuid}"
    inventories = json_of(*transport.request("GET", base + "/inventories"), "inventories")
    usages = json_of(*transport.request("GET", base + "/usages"), "usages")["usages"]
    out = []
    for rc, inv in inventories["inventories"].items():
        capacity = (inv["total"] - inv["reserved"]) * inv["allocation_ratio"]
        if usages.get(rc, 0) > capacity:
            out.append({"provider": uuid, "class": rc, "used": usages[rc], "capacity": capacity})
    return out


def over_capacity_api(transport: Transport, concurrency: int = 8) -> list[dict[str, Any]]:
    """The same check through the API (two GETs per provider)."""
    listing = json_of(*transport.request("GET", "/resource_providers"), "list providers")
    uuids = [p["uuid"] for p in listing["resource_providers"]]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        found = pool.map(lambda u: _provider_excess(transport, u), uuids)
        return [row for rows in found for row in rows]


def check(transport: Transport | None, database_url: str) -> dict[str, Any]:
    """{"over_capacity": n, "checked_via": "sql"|"api", "examples": [...]}."""
    if database_url:
        rows, via = over_capacity_sql(database_url), "sql"
    elif transport is not None:
        rows, via = over_capacity_api(transport), "api"
    else:
        return {"over_capacity": -1, "checked_via": "none", "examples": []}
    return {"over_capacity": len(rows), "checked_via": via, "examples": rows[:5]}
