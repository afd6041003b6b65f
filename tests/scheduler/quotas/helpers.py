"""Helpers for quota tests: providers and allocations written through Placement's write."""

from __future__ import annotations

import datetime
import uuid as uuidlib
from collections.abc import Mapping

from berth.db.engine import Database
from berth.placement.write import replace
from berth.placement.write.replace import ConsumerAllocations
from berth.placement.write.retry import atomically
from berth.scheduler import quotas
from berth.scheduler.quotas import Reservation, Scope
from tests.helpers import add_provider

BIG = {"total": 1000, "max_unit": 1000}
# A fixed clock, so expiry is exact.
T0 = datetime.datetime(2026, 12, 1, 12, 0, 0)


def big_host(db: Database) -> str:
    """A provider with room for everything the tests allocate; its uuid."""
    return add_provider(db, {"VCPU": BIG, "MEMORY_MB": {"total": 100000, "max_unit": 100000}})


def allocate(db: Database, host: str, project: str, user: str, resources: Mapping[str, int]) -> str:
    """A new consumer of ``project``/``user`` holding ``resources`` on ``host``; its uuid."""
    uuid = str(uuidlib.uuid4())
    request = ConsumerAllocations(uuid, {host: dict(resources)}, project, user)
    replace.write(db, [request], check_generation=False, attempts=10)
    return uuid


def set_limits(db: Database, scope: Scope, limits: Mapping[str, int]) -> None:
    """Replace ``scope``'s limits in a transaction of its own."""
    with db.write() as conn:
        quotas.set_limits(conn, scope, limits)


def reserve(
    db: Database,
    scope: Scope,
    resources: Mapping[str, int],
    count: int = 1,
    ttl: int = 60,
    now: datetime.datetime | None = T0,
) -> Reservation:
    """:func:`quotas.reserve` as its callers run it: through ``atomically``."""
    return atomically(
        db,
        lambda conn: quotas.reserve(conn, scope, resources, count, ttl_seconds=ttl, now=now),
        10,
        operation=quotas.OPERATION,
    )


def usage(db: Database, scope: Scope, now: datetime.datetime | None = T0) -> quotas.Usage:
    """The usage of ``scope`` at ``now``."""
    with db.read() as conn:
        return quotas.usage(conn, scope, now)
