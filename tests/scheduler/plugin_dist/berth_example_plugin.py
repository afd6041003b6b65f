"""A rack-aware filter and weigher, reading the ``rack`` namespace of host state.

A rack controller reports ``{"healthy": bool, "spare_kw": number}`` for each
host into its ``rack`` namespace (``PUT /scheduler/hosts/{uuid}/state/rack``).
"""

from __future__ import annotations

from typing import Any

from berth.scheduler.context import SchedulingContext
from berth.scheduler.explain import Reason
from berth.scheduler.filters import Filter
from berth.scheduler.hoststate import HostState
from berth.scheduler.weighers import Weigher

RACK_UNHEALTHY = Reason("rack_unhealthy", "rack unhealthy")  # type: ignore[arg-type]


def _rack(host: HostState) -> Any:
    return host.attrs.states.get("rack", {})


class RackHealthy(Filter):
    """Hosts whose rack reports itself unhealthy take nothing."""

    name = "rack_healthy"
    reasons = ("rack_unhealthy",)  # type: ignore[assignment]

    def feasible(self, host: HostState, ctx: SchedulingContext) -> Reason | None:
        return RACK_UNHEALTHY if _rack(host).get("healthy") is False else None


class RackPower(Weigher):
    """More spare power in the rack scores higher."""

    name = "rack_power"

    def score(self, host: HostState, ctx: SchedulingContext) -> float:
        return float(_rack(host).get("spare_kw", 0.0))
