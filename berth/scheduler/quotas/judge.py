"""The quota rule: a request passes when, for every limit of every scope it falls in
and every resource it asks for, in use + reserved + asked <= limit.

Pure: the numbers are read by :mod:`.usage` and :mod:`.limits`; a resource
without a limit is unlimited, and a limit of a resource the request does not
ask for is not judged (it may already be over, after the limit was lowered).
"""

from __future__ import annotations

from collections.abc import Mapping

from berth.scheduler.quotas.model import INSTANCES, Excess, Scope, Usage


def _order(resource: str) -> tuple[bool, str]:
    return resource != INSTANCES, resource


def judge(
    limits: Mapping[Scope, Mapping[str, int]],
    usage: Mapping[Scope, Usage],
    asked: Mapping[str, int],
) -> list[Excess]:
    """Every limit ``asked`` would break, project before user, ``instances`` first."""
    excesses = []
    for scope, scope_limits in limits.items():
        counted = usage.get(scope, Usage())
        for resource in sorted(scope_limits, key=_order):
            want = asked.get(resource, 0)
            limit = scope_limits[resource]
            if want > 0 and counted.counted(resource) + want > limit:
                excesses.append(
                    Excess(
                        scope,
                        resource,
                        limit,
                        counted.in_use.get(resource, 0),
                        counted.reserved.get(resource, 0),
                        want,
                    )
                )
    return excesses
