"""Claims on their own: the group rule holds inside the transaction, whatever the filters saw."""

from __future__ import annotations

from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement.write.retry import atomically
from berth.scheduler import claims, groups
from berth.scheduler.claims import Claim, KnownClasses, Owner
from berth.scheduler.spec import ServerGroupSpec
from tests.scheduler.conftest import consumers_of, host_uuid, usage, write_cloud

GROUP = "99999999-0000-0000-0000-00000000000a"
ONE = {"VCPU": 2}


def _known(db: Database) -> KnownClasses:
    with db.read() as conn:
        names = dict(conn.execute(select(t.resource_classes.c.id, t.resource_classes.c.name)).all())
    return KnownClasses(names)


def _claim(
    db: Database, instance: str, host: int, group: str | None = GROUP, amounts: dict[str, int] = ONE
) -> claims.Outcome:
    claim = Claim(instance, host_uuid(host), {host_uuid(host): dict(amounts)})
    return claims.claim_batch(db, [claim], Owner("p", "u", group), _known(db), retries=3)


def _make_group(db: Database, policy: str, limit: int | None = None) -> None:
    spec = ServerGroupSpec(GROUP, policy, limit)
    atomically(db, lambda conn: groups.create(conn, spec, "p", "u"), 3, operation="server_groups")


def test_anti_affinity_is_checked_in_the_claim(db: Database) -> None:
    write_cloud(db, 2)
    _make_group(db, "anti-affinity")
    a = "aaaaaaaa-0000-0000-0000-000000000001"
    b = "aaaaaaaa-0000-0000-0000-000000000002"
    assert _claim(db, a, 1).ok
    # A scheduler that did not see member a yet picks host 1 again: refused, nothing written.
    refused = _claim(db, b, 1)
    assert refused.kind == "group" and "anti-affinity" in refused.message
    assert set(consumers_of(db)) == {a}
    assert _claim(db, b, 2).ok
    with db.read() as conn:
        group = groups.get(conn, GROUP)
    assert group.members == {a: host_uuid(1), b: host_uuid(2)}
    assert group.generation == 2  # one swap per successful claim; the refused one rolled back


def test_affinity_is_checked_in_the_claim(db: Database) -> None:
    write_cloud(db, 2)
    _make_group(db, "affinity")
    assert _claim(db, "aaaaaaaa-0000-0000-0000-000000000001", 2).ok
    assert _claim(db, "aaaaaaaa-0000-0000-0000-000000000002", 1).kind == "group"
    assert _claim(db, "aaaaaaaa-0000-0000-0000-000000000003", 2).ok


def test_batch_is_all_or_nothing(db: Database) -> None:
    write_cloud(db, 2)
    _make_group(db, "anti-affinity", limit=2)
    batch = [
        Claim(f"bbbbbbbb-0000-0000-0000-00000000000{i}", host_uuid(1), {host_uuid(1): ONE})
        for i in range(3)
    ]
    outcome = claims.claim_batch(db, batch, Owner("p", "u", GROUP), _known(db), retries=3)
    assert outcome.kind == "group"
    assert usage(db) == {}
    assert claims.claim_batch(db, batch[:2], Owner("p", "u", GROUP), _known(db), 3).ok
    assert usage(db) == {host_uuid(1): {"VCPU": 4}}


def test_full_host_is_refused_and_release_undoes(db: Database) -> None:
    write_cloud(db, 1)
    _make_group(db, "soft-anti-affinity")
    first = "cccccccc-0000-0000-0000-000000000001"
    assert _claim(db, first, 1, amounts={"VCPU": 6}).ok
    full = _claim(db, "cccccccc-0000-0000-0000-000000000002", 1, amounts={"VCPU": 4})
    assert full.kind == "full" and "exceed the capacity" in full.message
    claims.release(db, [first], GROUP, retries=3)
    assert usage(db) == {}
    with db.read() as conn:
        assert groups.get(conn, GROUP).members == {}
