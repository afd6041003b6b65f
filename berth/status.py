"""``berth status``: a capacity summary of the cloud, read from the database.

Capacity is what Placement hands out: ``(total - reserved) * allocation_ratio``
per inventory.  A *host* is a provider tree (a root provider and everything
under it: NUMA nodes, GPUs, ...); its *fill* is its busiest resource class,
``used / capacity``, because that is the class that stops the next server
from landing there.  Every number is one grouped query, so the command stays
quick on a large cloud.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, func, select

from berth.db import tables as t
from berth.db.engine import Database


@dataclass
class ClassCapacity:
    """One resource class across the cloud."""

    name: str
    providers: int = 0
    total: int = 0
    reserved: int = 0
    capacity: int = 0
    used: int = 0

    @property
    def free(self) -> int:
        """Capacity not allocated (negative if over-committed after a change)."""
        return self.capacity - self.used

    @property
    def fill(self) -> float:
        """used / capacity (0 without capacity)."""
        return self.used / self.capacity if self.capacity else 0.0


@dataclass
class HostFill:
    """One provider tree and how full its busiest class is."""

    uuid: str
    name: str
    fill: float
    bottleneck: str
    classes: dict[str, tuple[int, int]] = field(default_factory=dict)  # class: (used, capacity)


@dataclass
class CloudStatus:
    """Everything ``berth status`` prints."""

    providers: int
    hosts: int
    consumers: int
    projects: int
    classes: list[ClassCapacity]
    fullest: list[HostFill]
    emptiest: list[HostFill]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``berth status --json``)."""
        data = asdict(self)
        for row, cls in zip(data["classes"], self.classes, strict=True):
            row["free"], row["fill"] = cls.free, round(cls.fill, 4)
        for key in ("fullest", "emptiest"):
            for host in data[key]:
                host["fill"] = round(host["fill"], 4)
                host["classes"] = {
                    name: {"used": used, "capacity": cap}
                    for name, (used, cap) in host["classes"].items()
                }
        return data


def _capacity(inv: Any = t.inventories) -> Any:
    return (inv.c.total - inv.c.reserved) * inv.c.allocation_ratio


def _class_names(conn: Connection) -> dict[int, str]:
    rows = conn.execute(select(t.resource_classes.c.id, t.resource_classes.c.name))
    return {row.id: row.name for row in rows}


def _classes(conn: Connection, names: dict[int, str]) -> list[ClassCapacity]:
    inv = t.inventories
    per_class: dict[int, ClassCapacity] = {}
    query = select(
        inv.c.resource_class_id,
        func.count(),
        func.sum(inv.c.total),
        func.sum(inv.c.reserved),
        func.sum(_capacity()),
    ).group_by(inv.c.resource_class_id)
    for rc_id, count, total, reserved, capacity in conn.execute(query):
        name = names.get(rc_id, f"#{rc_id}")
        per_class[rc_id] = ClassCapacity(
            name, int(count), int(total or 0), int(reserved or 0), int(capacity or 0)
        )
    alloc = t.allocations
    used_query = select(alloc.c.resource_class_id, func.sum(alloc.c.used)).group_by(
        alloc.c.resource_class_id
    )
    for rc_id, used in conn.execute(used_query):
        row = per_class.setdefault(rc_id, ClassCapacity(names.get(rc_id, f"#{rc_id}")))
        row.used = int(used or 0)
    return sorted(per_class.values(), key=lambda c: c.name)


def _root_column() -> Any:
    rp = t.resource_providers
    return func.coalesce(rp.c.root_provider_id, rp.c.id)


def _hosts(conn: Connection, names: dict[int, str]) -> list[HostFill]:
    rp, inv, alloc = t.resource_providers, t.inventories, t.allocations
    root = _root_column().label("root")
    per_root: dict[int, dict[str, list[int]]] = defaultdict(dict)
    cap_query = (
        select(root, inv.c.resource_class_id, func.sum(_capacity()))
        .join(rp, rp.c.id == inv.c.resource_provider_id)
        .group_by(root, inv.c.resource_class_id)
    )
    for root_id, rc_id, capacity in conn.execute(cap_query):
        per_root[root_id][names.get(rc_id, f"#{rc_id}")] = [0, int(capacity or 0)]
    used_query = (
        select(root, alloc.c.resource_class_id, func.sum(alloc.c.used))
        .join(rp, rp.c.id == alloc.c.resource_provider_id)
        .group_by(root, alloc.c.resource_class_id)
    )
    for root_id, rc_id, used in conn.execute(used_query):
        per_root[root_id].setdefault(names.get(rc_id, f"#{rc_id}"), [0, 0])[0] = int(used or 0)
    roots = select(rp.c.id, rp.c.uuid, rp.c.name).where(rp.c.id == _root_column())
    hosts = []
    for row in conn.execute(roots):
        classes = {name: (pair[0], pair[1]) for name, pair in per_root.get(row.id, {}).items()}
        fill, bottleneck = 0.0, ""
        for name, (used, capacity) in sorted(classes.items()):
            ratio = used / capacity if capacity else (1.0 if used else 0.0)
            if ratio > fill or not bottleneck:
                fill, bottleneck = ratio, name
        if not fill:
            bottleneck = ""  # nothing used: no class is the busiest
        hosts.append(HostFill(row.uuid, row.name or "", fill, bottleneck, classes))
    return hosts


def gather(db: Database, top: int = 5) -> CloudStatus:
    """Read the cloud's capacity in one read transaction."""
    with db.read() as conn:
        names = _class_names(conn)
        classes = _classes(conn, names)
        hosts = _hosts(conn, names)
        providers = conn.execute(select(func.count()).select_from(t.resource_providers))
        consumers = conn.execute(select(func.count()).select_from(t.consumers))
        projects = conn.execute(select(func.count()).select_from(t.projects))
        counts = (providers.scalar_one(), consumers.scalar_one(), projects.scalar_one())
    with_inventory = [h for h in hosts if h.classes]
    by_fill = sorted(with_inventory, key=lambda h: (-h.fill, h.name, h.uuid))
    emptiest = sorted(with_inventory, key=lambda h: (h.fill, h.name, h.uuid))
    return CloudStatus(
        providers=int(counts[0]),
        hosts=len(hosts),
        consumers=int(counts[1]),
        projects=int(counts[2]),
        classes=classes,
        fullest=by_fill[:top],
        emptiest=emptiest[:top],
    )


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _host_table(title: str, hosts: list[HostFill]) -> Table:
    table = Table("host", "uuid", "fill", "busiest class", title=title)
    table.add_column("used / capacity", justify="right")
    for host in hosts:
        used, cap = host.classes.get(host.bottleneck, (0, 0))
        detail = f"{used} / {cap}" if host.bottleneck else "-"
        table.add_row(host.name, host.uuid, _percent(host.fill), host.bottleneck or "-", detail)
    return table


def render(status: CloudStatus, console: Console) -> None:
    """Print the summary as rich tables."""
    console.print(
        f"{status.providers} resource providers in {status.hosts} trees; "
        f"{status.consumers} consumers in {status.projects} projects"
    )
    table = Table(title="Capacity per resource class")
    for column in ("resource class", "providers", "total", "reserved", "capacity"):
        table.add_column(column, justify="left" if column == "resource class" else "right")
    for column in ("used", "free", "used %"):
        table.add_column(column, justify="right")
    for row in status.classes:
        table.add_row(
            row.name,
            str(row.providers),
            str(row.total),
            str(row.reserved),
            str(row.capacity),
            str(row.used),
            str(row.free),
            _percent(row.fill),
        )
    console.print(table)
    if status.fullest:
        console.print(_host_table("Fullest hosts", status.fullest))
        console.print(_host_table("Emptiest hosts", status.emptiest))
