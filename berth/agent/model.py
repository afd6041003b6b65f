"""What the agent knows: its hosts (inventory, traits, usage in memory), queues, work items.

A host is a root resource provider; the agent reads its own inventory,
traits and usage from Placement and keeps the usage current in memory
(adding what its hosts claim, removing what they tear down).  Nested
providers are not simulated: a host's resources are the root's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson


@dataclasses.dataclass(frozen=True)
class Inventory:
    """One resource class of a host, as Placement stores it."""

    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = 2**31 - 1
    step_size: int = 1
    allocation_ratio: float = 1.0

    @property
    def capacity(self) -> float:
        """What allocations may add up to (Placement's rule)."""
        return (self.total - self.reserved) * self.allocation_ratio

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Inventory:
        """From one class of ``GET /resource_providers/{uuid}/inventories``."""
        return cls(
            total=int(body["total"]),
            reserved=int(body.get("reserved", 0)),
            min_unit=int(body.get("min_unit", 1)),
            max_unit=int(body.get("max_unit", 2**31 - 1)),
            step_size=int(body.get("step_size", 1)),
            allocation_ratio=float(body.get("allocation_ratio", 1.0)),
        )


@dataclasses.dataclass(eq=False)
class Host:
    """A simulated compute host: a root provider and what this agent holds on it."""

    index: int  # position in the fleet: a cheap, stable key for sets and heaps
    uuid: str
    name: str
    inventories: dict[str, Inventory]
    traits: frozenset[str]
    used: dict[str, int]  # Placement's usage, plus what is dispatched here and not yet claimed
    # instance -> amounts: dispatched to this host, claim not answered yet
    pending: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # instance -> amounts: claimed (the allocation is in Placement) and not torn down
    instances: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    version: int = 0  # bumped at every change of ``used``: older heap entries are stale
    _fullness: tuple[int, float] = (-1, 0.0)  # (version, fullness at that version)

    def fullness(self) -> float:
        """The used share of the host's most used resource class (0 empty, 1 full)."""
        if self._fullness[0] != self.version:  # computed once per version, for every queue
            shares = [
                self.used.get(rc, 0) / inv.capacity
                for rc, inv in self.inventories.items()
                if inv.capacity > 0
            ]
            self._fullness = (self.version, max(shares, default=1.0))
        return self._fullness[1]

    def add(self, amounts: Mapping[str, int], sign: int = 1) -> None:
        """Count ``amounts`` as used (``sign=-1``: no longer used)."""
        for rc, amount in amounts.items():
            self.used[rc] = max(0, self.used.get(rc, 0) + sign * amount)
        self.version += 1


@dataclasses.dataclass(frozen=True)
class Queue:
    """One work queue (docs/pull.md, "Queue JSON"): what each of its instances asks for."""

    name: str
    subject: str
    resources: dict[str, int]
    required: frozenset[str]
    forbidden: frozenset[str]

    @classmethod
    def from_json(cls, data: bytes | Mapping[str, Any]) -> Queue:
        """From the bucket's value (bytes) or a decoded queue JSON; ValueError if malformed."""
        body = orjson.loads(data) if isinstance(data, bytes | bytearray) else data
        try:
            return cls(
                name=str(body["name"]),
                subject=str(body["subject"]),
                resources={str(k): int(v) for k, v in body["resources"].items()},
                required=frozenset(body.get("required") or ()),
                forbidden=frozenset(body.get("forbidden") or ()),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed queue: {exc!r}") from None


@dataclasses.dataclass(frozen=True)
class Job:
    """One work message: an instance to place (docs/pull.md, "Message")."""

    instance: str
    request: str
    queue: str
    attempt: int
    resources: dict[str, int]
    required: frozenset[str]
    forbidden: frozenset[str]

    @classmethod
    def from_json(cls, data: bytes) -> Job:
        """From a message's data; ValueError if malformed."""
        try:
            body = orjson.loads(data)
            return cls(
                instance=str(body["instance"]),
                request=str(body.get("request", "")),
                queue=str(body.get("queue", "")),
                attempt=int(body["attempt"]),
                resources={str(k): int(v) for k, v in body["resources"].items()},
                required=frozenset(body.get("required") or ()),
                forbidden=frozenset(body.get("forbidden") or ()),
            )
        except (KeyError, TypeError, AttributeError, ValueError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"malformed work message: {exc!r}") from None
