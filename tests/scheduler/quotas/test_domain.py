"""Quota limits, usage and reservations on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime

import pytest

from berth.db.engine import Database
from berth.placement import errors, resource_classes, usages
from berth.placement.usages import ProjectFilter
from berth.scheduler import quotas
from berth.scheduler.quotas import QuotaExceeded, Scope
from tests.scheduler.quotas.helpers import T0, allocate, big_host, reserve, set_limits, usage

P1, U1, U2 = Scope("p1"), Scope("p1", "u1"), Scope("p1", "u2")


@pytest.fixture
def host(db: Database) -> str:
    """A provider with room for everything, and allocations of two projects and users."""
    uuid = big_host(db)
    allocate(db, uuid, "p1", "u1", {"VCPU": 2, "MEMORY_MB": 512})
    allocate(db, uuid, "p1", "u1", {"VCPU": 1})
    allocate(db, uuid, "p1", "u2", {"VCPU": 4, "MEMORY_MB": 1024})
    allocate(db, uuid, "p2", "u1", {"VCPU": 8})
    return uuid


@pytest.mark.parametrize(
    ("project", "user"), [("p1", None), ("p1", "u1"), ("p1", "u2"), ("p2", None), ("p3", None)]
)
def test_in_use_is_what_get_usages_counts(
    db: Database, host: str, project: str, user: str | None
) -> None:
    """Per class as ``GET /usages?project_id=&user_id=``; instances as its consumer_count."""
    who = ProjectFilter(project, user)
    with db.read() as conn:
        classes = usages.total_usages(conn, who)
        grouped = usages.usages_by_consumer_type(conn, who, usages.ALL_TYPES)
    consumers = grouped.get("all", {}).get("consumer_count", 0)
    counted = usage(db, Scope(project, user))
    assert counted.in_use == {**classes, **({"instances": consumers} if consumers else {})}
    assert counted.reserved == {}


def test_limits_per_project_and_per_user(db: Database) -> None:
    set_limits(db, P1, {"instances": 10, "VCPU": 40, "MEMORY_MB": 81920})
    set_limits(db, U1, {"VCPU": 8})
    with db.read() as conn:
        assert quotas.get_limits(conn, P1) == {"instances": 10, "VCPU": 40, "MEMORY_MB": 81920}
        assert quotas.get_limits(conn, U1) == {"VCPU": 8}
        assert quotas.get_limits(conn, U2) == {}
        assert quotas.get_limits(conn, Scope("p2")) == {}
    set_limits(db, P1, {"DISK_GB": 5})  # replaces, does not merge
    with db.write() as conn:
        assert quotas.get_limits(conn, P1) == {"DISK_GB": 5}
        quotas.delete_limits(conn, P1)
        assert quotas.get_limits(conn, P1) == {}
        assert quotas.get_limits(conn, U1) == {"VCPU": 8}  # the user's stay
        quotas.delete_limits(conn, P1)  # nothing left: no error


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"CUSTOM_NOPE": 1}, "No such resource class(es): CUSTOM_NOPE"),
        ({"VCPU": -1}, "whole numbers from 0 to"),
        ({"VCPU": 2**31}, "whole numbers from 0 to"),
        ({"VCPU": 1.5}, "whole numbers from 0 to"),
        ({"VCPU": True}, "whole numbers from 0 to"),
    ],
)
def test_bad_limits_are_invalid_input(db: Database, limits: dict[str, int], words: str) -> None:
    with pytest.raises(errors.InvalidInput) as caught, db.write() as conn:
        quotas.set_limits(conn, P1, limits)
    assert words in caught.value.message


def test_custom_classes_once_they_exist(db: Database) -> None:

    with db.write() as conn:
        resource_classes.create_class(conn, "CUSTOM_GPU")
    set_limits(db, P1, {"CUSTOM_GPU": 2})
    with db.read() as conn:
        assert quotas.get_limits(conn, P1) == {"CUSTOM_GPU": 2}


def test_reservations_count_until_they_expire(db: Database, host: str) -> None:
    taken = reserve(db, U1, {"VCPU": 2, "MEMORY_MB": 256}, count=3, ttl=60)
    assert taken.resources == {"instances": 3, "VCPU": 6, "MEMORY_MB": 768}
    assert taken.expires_at == T0 + datetime.timedelta(seconds=60)
    reserved = {"instances": 3, "VCPU": 6, "MEMORY_MB": 768}
    assert usage(db, U1).reserved == reserved
    assert usage(db, P1).reserved == reserved
    assert usage(db, U2).reserved == {}
    assert usage(db, Scope("p2")).reserved == {}
    just_before = T0 + datetime.timedelta(seconds=59)
    assert usage(db, P1, just_before).reserved == reserved
    at_expiry = T0 + datetime.timedelta(seconds=60)
    assert usage(db, P1, at_expiry).reserved == {}  # expired, not yet purged
    with db.read() as conn:
        assert quotas.find(conn, taken.uuid, just_before) == taken
        assert quotas.find(conn, taken.uuid, at_expiry) is None


def test_expired_reservations_make_room_and_are_purged(db: Database) -> None:
    set_limits(db, P1, {"instances": 2})
    first = reserve(db, U1, {"VCPU": 1}, count=2, ttl=30)
    with pytest.raises(QuotaExceeded):
        reserve(db, U1, {"VCPU": 1}, now=T0 + datetime.timedelta(seconds=29))
    later = T0 + datetime.timedelta(seconds=30)
    second = reserve(db, U2, {"VCPU": 1}, count=2, now=later)  # the first no longer counts
    with db.read() as conn:
        assert quotas.find(conn, first.uuid, T0) is None  # the reservation purged its project's
        assert quotas.find(conn, second.uuid, later) == second
    with db.write() as conn:
        assert quotas.purge_expired(conn, later + datetime.timedelta(seconds=59)) == 0
        assert quotas.purge_expired(conn, later + datetime.timedelta(seconds=60)) == 2
    assert usage(db, P1, later).reserved == {}


def test_release_is_idempotent(db: Database) -> None:
    set_limits(db, U1, {"instances": 1})
    taken = reserve(db, U1, {"VCPU": 1})
    with db.write() as conn:
        assert quotas.release(conn, taken.uuid) is True
        assert quotas.release(conn, taken.uuid) is False
        assert quotas.release(conn, "no-such-reservation") is False
    assert usage(db, U1).reserved == {}
    reserve(db, U1, {"VCPU": 1})  # the room came back


def test_consume_hands_the_reservation_over_to_allocations(db: Database, host: str) -> None:
    set_limits(db, P1, {"instances": 5})
    taken = reserve(db, U1, {"VCPU": 1})
    before = usage(db, P1)
    with db.write() as conn:
        assert quotas.consume(conn, taken.uuid, T0) == taken
    allocate(db, host, "p1", "u1", {"VCPU": 1})  # in real life: in the claim's transaction
    after = usage(db, P1)
    assert before.counted("instances") == after.counted("instances") == 4
    assert before.counted("VCPU") == after.counted("VCPU") == 8
    with db.write() as conn:
        assert quotas.consume(conn, taken.uuid, T0) is None  # consumed once


def test_over_quota_lists_every_excess_and_writes_nothing(db: Database, host: str) -> None:
    set_limits(db, P1, {"instances": 4, "VCPU": 10, "MEMORY_MB": 100000})
    set_limits(db, U1, {"VCPU": 4})
    reserve(db, U2, {"VCPU": 1})  # p1: 3 instances in use, 1 reserved; VCPU 7 + 1
    before = usage(db, P1)
    with pytest.raises(QuotaExceeded) as caught:
        reserve(db, U1, {"VCPU": 2, "MEMORY_MB": 10})
    assert [
        (str(e.scope), e.resource, e.limit, e.in_use, e.reserved, e.asked)
        for e in caught.value.excesses
    ] == [
        ("project p1", "instances", 4, 3, 1, 1),
        ("user u1 in project p1", "VCPU", 4, 3, 0, 2),
    ]
    assert "Project p1 is limited to 4 instances, has 3 in use and 1 reserved" in (
        caught.value.message
    )
    assert usage(db, P1) == before


def test_user_limits_do_not_bind_other_users(db: Database, host: str) -> None:
    set_limits(db, U1, {"VCPU": 3})  # u1 holds 3 already
    with pytest.raises(QuotaExceeded):
        reserve(db, U1, {"VCPU": 1})
    reserve(db, U2, {"VCPU": 100})
    reserve(db, U1, {"MEMORY_MB": 64})  # asks no VCPU: the VCPU limit is not judged


@pytest.mark.parametrize(
    ("scope", "resources", "count", "ttl"),
    [
        (P1, {"VCPU": 1}, 1, 60),  # no user
        (U1, {"VCPU": 1}, 0, 60),
        (U1, {"VCPU": -1}, 1, 60),
        (U1, {"instances": 1}, 1, 60),
        (U1, {"VCPU": 1}, 1, 0),
        (Scope("", "u1"), {"VCPU": 1}, 1, 60),
    ],
)
def test_bad_reservations_are_invalid_input(
    sqlite_db: Database, scope: Scope, resources: dict[str, int], count: int, ttl: int
) -> None:
    with pytest.raises(errors.InvalidInput):
        reserve(sqlite_db, scope, resources, count, ttl)


def test_reserve_each_judges_the_whole_request_and_sets_aside_one_per_instance(
    db: Database,
) -> None:
    """Pull dispatch's reservation: judged for all instances at once, one reservation per
    instance (each claim consumes its own), and release_many drops them together."""
    set_limits(db, P1, {"instances": 3, "VCPU": 6})

    def each(count: int) -> list[quotas.Reservation]:
        with db.write() as conn:
            return quotas.reserve_each(conn, U1, {"VCPU": 2}, count, ttl_seconds=60, now=T0)

    with pytest.raises(QuotaExceeded) as refused:
        each(4)
    assert [(e.resource, e.asked) for e in refused.value.excesses] == [
        ("instances", 4),
        ("VCPU", 8),
    ]
    made = each(3)
    assert [r.resources for r in made] == [{"instances": 1, "VCPU": 2}] * 3
    assert len({r.uuid for r in made}) == 3
    assert usage(db, P1).reserved == {"instances": 3, "VCPU": 6}
    with db.write() as conn:
        assert quotas.release_many(conn, [made[0].uuid, made[1].uuid]) == 4  # rows: 2 each
        assert quotas.release_many(conn, [made[0].uuid]) == 0
    assert usage(db, P1).reserved == {"instances": 1, "VCPU": 2}
