"""What the scheduler answers: per instance a :class:`Selection` (like Nova's).

A selection names the chosen host, the allocation claimed there, and
alternates (other hosts with the allocation each would take) that a caller
can fall back to if the instance fails to build on the chosen host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth.placement import errors
from berth.scheduler.explain import Explanation

NO_VALID_HOST = "berth.scheduler.no_valid_host"


@dataclass(frozen=True)
class HostChoice:
    """A host and the allocation an instance would take there."""

    host_uuid: str
    allocation: dict[str, dict[str, int]]  # provider uuid -> class -> amount
    weight: float = 0.0
    # The same allocation by (provider id, class id), for this worker's bookkeeping.
    amounts: dict[tuple[int, int], int] = field(default_factory=dict, compare=False, repr=False)
    # The host's name as this worker's view holds it (for people, not for matching).
    host_name: str | None = field(default=None, compare=False)

    def as_body(self) -> dict[str, Any]:
        """JSON shape: the host and an allocation request as Placement takes it."""
        return {
            "host": {"uuid": self.host_uuid, "name": self.host_name},
            "allocation_request": {
                "allocations": {
                    rp: {"resources": dict(resources)} for rp, resources in self.allocation.items()
                }
            },
            "weight": round(self.weight, 6),
        }


@dataclass
class Selection:
    """Where one instance goes (claimed unless the request was a dry run)."""

    instance_uuid: str
    chosen: HostChoice
    alternates: list[HostChoice] = field(default_factory=list)

    @property
    def host_uuid(self) -> str:
        """The chosen host's (root provider's) uuid."""
        return self.chosen.host_uuid

    @property
    def allocation(self) -> dict[str, dict[str, int]]:
        """What is (or would be) allocated on the chosen host."""
        return self.chosen.allocation

    def as_body(self) -> dict[str, Any]:
        """The JSON shape of one selection."""
        body = {"instance_uuid": self.instance_uuid, **self.chosen.as_body()}
        body["alternates"] = [alt.as_body() for alt in self.alternates]
        return body


@dataclass
class Answer:
    """The outcome of one select_destinations call."""

    selections: list[Selection]
    claimed: bool
    failed: list[str] = field(default_factory=list)  # instances left unplaced
    explanation: Explanation | None = None
    lost_races: int = 0  # claim transactions rolled back by a concurrent writer
    refused: int = 0  # claims a host refused (full, group rule, conflict) before one held

    def as_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /scheduler/select_destinations``."""
        body: dict[str, Any] = {
            "selections": [s.as_body() for s in self.selections],
            "claimed": self.claimed,
            "failed": list(self.failed),
            "lost_races": self.lost_races,
            "refused_claims": self.refused,
        }
        if self.explanation is not None:
            body["explanation"] = self.explanation.as_body()
        return body


class NoValidHost(errors.Conflict):
    """No host can take the request (or, all-or-nothing, one of its instances)."""

    default_code = NO_VALID_HOST

    def __init__(self, message: str, explanation: Explanation | None = None) -> None:
        super().__init__(message)
        self.explanation = explanation
