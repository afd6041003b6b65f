"""``berth_host_state_staleness_seconds``: observed when a worker's catalog applies a change.

Table-driven for :func:`observe_applied` (which namespaces count), then the
catalog against each database: a refresh that applies writes observes one
value per changed namespace, a full reload none, and the stamp keeps
sub-second precision where the database does.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY

from berth.db.engine import Database
from berth.metrics import STALENESS_BUCKETS
from berth.placement.write.retry import atomically
from berth.scheduler import state_store
from berth.scheduler.host_attributes import HostAttributes
from berth.scheduler.hoststate import HostCatalog
from berth.scheduler.staleness import observe_applied
from berth.scheduler.state_store import NamespaceState
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.scheduler.helpers import RULES

NAME = "berth_host_state_staleness_seconds"
NOW = datetime.datetime(2026, 12, 3, 10, 15, 2, 500000)
H1, H2 = host_uuid(1), host_uuid(2)


def _count() -> float:
    return REGISTRY.get_sample_value(f"{NAME}_count") or 0.0


def _sum() -> float:
    return REGISTRY.get_sample_value(f"{NAME}_sum") or 0.0


def _at_most(seconds: float) -> float:
    """Observations so far in the buckets up to ``seconds`` (one of the bounds)."""
    return REGISTRY.get_sample_value(f"{NAME}_bucket", {"le": str(seconds)}) or 0.0


def _held(**generations: int) -> HostAttributes:
    """What a catalog held: each namespace at a generation, received long ago."""
    old = NOW - datetime.timedelta(hours=1)
    return HostAttributes.of({ns: NamespaceState(g, old, {}) for ns, g in generations.items()})


def _read(ages: Mapping[str, tuple[int, float]]) -> dict[str, NamespaceState]:
    """What a refresh read: namespace -> (generation, seconds before NOW it was received)."""
    return {
        ns: NamespaceState(g, NOW - datetime.timedelta(seconds=age), {})
        for ns, (g, age) in ages.items()
    }


@pytest.mark.parametrize(
    ("previous", "read", "observed"),
    [
        (None, {"compute": (1, 0.2)}, [0.2]),  # a host the catalog did not hold
        (_held(compute=1), {"compute": (2, 1.5)}, [1.5]),  # a new generation
        (_held(compute=2), {"compute": (2, 9.0)}, []),  # unchanged: nothing learnt
        (_held(compute=2, net=1), {"compute": (2, 9.0), "net": (4, 0.04)}, [0.04]),
        (_held(compute=1), {"compute": (2, 0.3), "net": (1, 0.6)}, [0.3, 0.6]),
        (None, {"compute": (3, -0.5)}, [0.0]),  # a clock behind the stamp: no negative age
    ],
)  # fmt: skip
def test_each_changed_namespace_is_observed_once(
    previous: HostAttributes | None, read: Mapping[str, tuple[int, float]], observed: list[float]
) -> None:
    count, total = _count(), _sum()
    observe_applied(previous, _read(read), NOW)
    assert _count() - count == len(observed)
    assert _sum() - total == pytest.approx(sum(observed))


def _patch(db: Database, host: str, state: dict[str, Any]) -> NamespaceState:
    return atomically(
        db, lambda conn: state_store.patch(conn, RULES, host, "compute", state, None), 3,
        operation="test",
    )  # fmt: skip


def test_the_catalog_observes_applied_writes_not_its_full_load(db: Database) -> None:
    write_cloud(db, 2)
    _patch(db, H1, {"metrics": {"cpu": 1}})
    catalog = HostCatalog(db)
    count = _count()
    catalog.refresh(0.0)  # the first look reads everything: the state's age, not staleness
    assert _count() == count
    _patch(db, H1, {"metrics": {"cpu": 2}})
    _patch(db, H2, {"metrics": {"cpu": 3}})
    _patch(db, H2, {"metrics": {"cpu": 4}})  # overwrites the one before: the newest is seen
    quick, total = _at_most(STALENESS_BUCKETS[-1]), _sum()
    catalog.refresh(0.0)
    assert _count() - count == 2
    assert _at_most(STALENESS_BUCKETS[-1]) - quick == 2  # seconds, not hours: right clock
    assert 0.0 <= _sum() - total < 60.0
    catalog.refresh(0.0)  # nothing new
    assert _count() - count == 2


def test_the_stamp_keeps_what_the_column_keeps(db: Database) -> None:
    """Sub-second on PostgreSQL and SQLite; whole seconds on MariaDB, where the answer says
    what is stored."""
    write_cloud(db, 1)
    written = _patch(db, H1, {"metrics": {"cpu": 1}})
    with db.read() as conn:
        stored = state_store.get_one(conn, H1, "compute")
    assert stored.received_at == written.received_at
    if db.dialect == "mysql":
        assert written.received_at.microsecond == 0
