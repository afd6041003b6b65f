"""Hosts and queues for the agent's tests."""

from __future__ import annotations

from berth.agent.model import Host, Inventory, Queue


def host(
    index: int = 0,
    vcpu: int = 8,
    ram: int = 16384,
    used: dict[str, int] | None = None,
    traits: tuple[str, ...] = (),
    **inventories: Inventory,
) -> Host:
    """A host with VCPU and MEMORY_MB (1024 MB reserved) unless ``inventories`` say otherwise."""
    inv = {"VCPU": Inventory(vcpu), "MEMORY_MB": Inventory(ram, reserved=1024)}
    inv.update(inventories)
    return Host(
        index=index,
        uuid=f"00000000-0000-0000-0000-{index:012d}",
        name=f"h{index}",
        inventories=inv,
        traits=frozenset(traits),
        used=dict(used or {}),
    )


def queue(
    name: str = "q",
    required: tuple[str, ...] = (),
    forbidden: tuple[str, ...] = (),
    **resources: int,
) -> Queue:
    """A queue asking for ``resources`` per instance (default 1 VCPU, 1024 MB)."""
    return Queue(
        name=name,
        subject=f"berth.work.{name}",
        resources=resources or {"VCPU": 1, "MEMORY_MB": 1024},
        required=frozenset(required),
        forbidden=frozenset(forbidden),
    )
