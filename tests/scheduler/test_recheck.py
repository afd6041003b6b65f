"""The claim's recheck on its own: each check's verdict (a table), its cost, and its races."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, select

from berth.bench import cloud_db
from berth.bench.cloud import ProviderSpec
from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import traits
from berth.placement.class_ids import ResourceClassCache
from berth.placement.providers import get_provider
from berth.placement.write import batch
from berth.placement.write.batch import NewConsumer, OwnerIds, RuleVerdict
from berth.placement.write.retry import atomically
from berth.scheduler import host_attributes, recheck
from berth.scheduler.claims import Claim
from berth.scheduler.hoststate import AggregateView
from berth.scheduler.recheck import NO_RULES, Rules
from berth.scheduler.rule_state import HostNow, ProviderNow
from berth.scheduler.spec import RequestSpec
from tests.scheduler.conftest import host_uuid, write_cloud
from tests.scheduler.helpers import RULES, config

A, B = "aaaaaaaa-0000-0000-0000-00000000000a", "aaaaaaaa-0000-0000-0000-00000000000b"
X = "eeeeeeee-0000-0000-0000-000000000001"


def _provider(pid: int, root: int = 1, **kw: Any) -> ProviderNow:
    return ProviderNow(
        pid, f"p{pid}", 0, root, kw.pop("disabled", False), kw.pop("zone", None), **kw
    )


def _host(
    *allocated: ProviderNow,
    root: ProviderNow | None = None,
    view: AggregateView | None = None,
    hosts_of: dict[str, set[int]] | None = None,
) -> HostNow:
    root = root or allocated[0]
    return HostNow(root, list(allocated), view or AggregateView(), hosts_of or {})


ROOT_IN_A = _provider(1, aggregates={A: {}})
CHILD = _provider(2, traits={"CUSTOM_GPU"})
SHARED = _provider(9, root=9)

# (case, host as the claim transaction reads it, rules relied on, reason code or None)
CASES: list[tuple[str, HostNow, Rules, str | None]] = [
    ("nothing relied on", _host(_provider(1, disabled=True)), NO_RULES, None),
    ("enabled", _host(_provider(1)), Rules(enabled_only=True), None),
    ("disabled", _host(_provider(1, disabled=True)), Rules(enabled_only=True), "disabled"),
    ("own zone", _host(_provider(1, zone="az1")), Rules(zone="az1"), None),
    (
        "own zone wins",
        _host(_provider(1, zone="az2"), view=AggregateView("az1")),
        Rules(zone="az1"),
        "other_zone",
    ),
    ("aggregates' zone", _host(_provider(1), view=AggregateView("az1")), Rules(zone="az1"), None),
    ("default zone", _host(_provider(1)), Rules(zone="nova", default_zone="nova"), None),
    ("other zone", _host(_provider(1)), Rules(zone="az1", default_zone="nova"), "other_zone"),
    ("open to all", _host(_provider(1)), Rules(isolation=True, project_id="p"), None),
    (
        "isolated to p",
        _host(_provider(1), view=AggregateView(tenants=frozenset({"p"}))),
        Rules(isolation=True, project_id="p"),
        None,
    ),
    (
        "isolated to q",
        _host(_provider(1), view=AggregateView(tenants=frozenset({"q"}))),
        Rules(isolation=True, project_id="p"),
        "isolated",
    ),
    (
        "extra spec met",
        _host(_provider(1), view=AggregateView(metadata={"ssd": frozenset({"true"})})),
        Rules(extra_specs=(("ssd", "true"),)),
        None,
    ),
    (
        "extra spec unmet",
        _host(_provider(1)),
        Rules(extra_specs=(("ssd", "true"),)),
        "aggregate_metadata",
    ),
    (
        "required: the union of the allocation",
        _host(_provider(1, traits={"CUSTOM_A"}), CHILD),
        Rules(required_traits=frozenset({"CUSTOM_A", "CUSTOM_GPU"})),
        None,
    ),
    (
        "required: lacked",
        _host(_provider(1)),
        Rules(required_traits=frozenset({"CUSTOM_A"})),
        "lacked_trait",
    ),
    (
        "required: the root allocating nothing does not count",
        _host(CHILD, root=_provider(1, traits={"CUSTOM_A"})),
        Rules(required_traits=frozenset({"CUSTOM_A"})),
        "lacked_trait",
    ),
    (
        "forbidden: on any provider of the allocation",
        _host(_provider(1), CHILD),
        Rules(forbidden_traits=frozenset({"CUSTOM_GPU"})),
        "forbidden_trait",
    ),
    (
        "forbidden: absent",
        _host(_provider(1)),
        Rules(forbidden_traits=frozenset({"CUSTOM_GPU"})),
        None,
    ),
    ("member_of: in", _host(ROOT_IN_A), Rules(member_of=(frozenset({A, B}),)), None),
    (
        "member_of: out",
        _host(_provider(1)),
        Rules(member_of=(frozenset({A}),)),
        "not_in_aggregates",
    ),
    (
        "member_of: a child passes when the root is in",
        _host(CHILD, root=ROOT_IN_A),
        Rules(member_of=(frozenset({A}),)),
        None,
    ),
    (
        "member_of: a sharing provider must be in itself",
        _host(ROOT_IN_A, SHARED, root=ROOT_IN_A),
        Rules(member_of=(frozenset({A}),)),
        "not_in_aggregates",
    ),
    (
        "same_host: holds",
        _host(_provider(1), hosts_of={X: {1}}),
        Rules(same_host=frozenset({X})),
        None,
    ),
    (
        "same_host: moved away",
        _host(_provider(1), hosts_of={X: {2}}),
        Rules(same_host=frozenset({X})),
        "not_same_host",
    ),
    (
        "different_host: moved in",
        _host(_provider(1), hosts_of={X: {1}}),
        Rules(different_host=frozenset({X})),
        "different_host",
    ),
    ("different_host: elsewhere", _host(_provider(1)), Rules(different_host=frozenset({X})), None),
]


@pytest.mark.parametrize(
    ("host", "rules", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_checks(host: HostNow, rules: Rules, code: str | None) -> None:
    reason = recheck.refusal(host, rules)
    assert (reason.code if reason else None) == code


def test_rules_follow_the_enabled_filters() -> None:
    spec = RequestSpec(
        {"VCPU": 1},
        required_traits={"CUSTOM_A"},
        availability_zone="az1",
        project_id="p",
        same_host=[X],
        extra_specs={"ssd": "true"},
    )
    every = Rules.of(spec, config())
    assert every.enabled_only and every.isolation and every.zone == "az1"
    assert every.same_host == {X} and every.extra_specs == (("ssd", "true"),)
    bare = Rules.of(RequestSpec({"VCPU": 1}), config(filters=""))
    assert not bare.any and recheck.for_batch([[Claim(X, "h", {}, bare)]]) is None
    traits_only = Rules.of(spec, config(filters=""))
    assert traits_only.traits == {"CUSTOM_A"} and traits_only.zone is None


# -- on a database: cost and races ------------------------------------------------------------


@contextmanager
def _counting(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _claims(n: int, rules: Rules) -> list[list[Claim]]:
    return [
        [
            Claim(
                f"eeeeeeee-0000-0000-0000-{i:012d}",
                host_uuid(i),
                {host_uuid(i): {"VCPU": 1}},
                rules,
            )
        ]
        for i in range(1, n + 1)
    ]


DEFAULT_FILTERS = Rules.of(RequestSpec({"VCPU": 1}, project_id="p"), config())
EVERYTHING = Rules(
    required_traits=frozenset({"CUSTOM_A"}),
    forbidden_traits=frozenset({"CUSTOM_B"}),
    member_of=(frozenset({A}),),
    enabled_only=True,
    zone="az1",
    isolation=True,
    project_id="p",
    different_host=frozenset({X}),
)


@pytest.mark.parametrize(("rules", "queries"), [(DEFAULT_FILTERS, 1), (EVERYTHING, 2)])
def test_one_or_two_queries_per_batch(db: Database, rules: Rules, queries: int) -> None:
    write_cloud(db, 8, traits={1: {"CUSTOM_A"}}, aggregates={1: {A}})
    check = recheck.for_batch(_claims(8, rules))
    assert check is not None
    with db.write() as conn, _counting(db) as statements:
        said = check(conn)
    assert len(statements) == queries, statements
    assert len(said) == 8 and all(isinstance(v, RuleVerdict) for v in said)


def _nested(db: Database) -> tuple[str, str]:
    """One host whose root has no inventory and whose child has the VCPU; their uuids."""
    root, child = host_uuid(1), host_uuid(101)
    specs = [
        ProviderSpec(uuid=root, name="cn1", traits={"CUSTOM_A"}),
        ProviderSpec(
            uuid=child, name="cn1-numa0", parent=0, inventories={"VCPU": (8, 0, 1, 8, 1, 1.0)}
        ),
    ]
    with db.write() as conn:
        cloud_db.write(conn, specs)
    return root, child


def _generation(db: Database, uuid: str) -> int:
    with db.read() as conn:
        return get_provider(conn, uuid).generation


def _write(db: Database, claim: Claim, between: Callable[[], None] | None = None) -> str:
    """The batch write of ``claim`` with its recheck, ``between`` committed after the check."""
    check = recheck.for_batch([[claim]])
    assert check is not None

    def check_then(conn: Connection) -> Sequence[RuleVerdict]:
        said = check(conn)
        if between is not None:
            between()
        return said

    request = [NewConsumer(claim.instance_uuid, claim.allocation)]
    with db.write() as conn:
        (verdict,) = batch.write(
            conn, [request], ResourceClassCache(conn), OwnerIds(), rules=check_then
        )
    return verdict.kind


def test_the_root_is_swapped_even_when_it_allocates_nothing(db: Database) -> None:
    root, child = _nested(db)
    claim = Claim(X, root, {child: {"VCPU": 1}}, Rules(enabled_only=True))
    before = _generation(db, root)
    assert _write(db, claim) == batch.WRITTEN
    assert _generation(db, root) == before + 1


def _disable(db: Database, uuid: str) -> Callable[[], None]:
    return lambda: atomically(
        db,
        lambda conn: host_attributes.put_host(conn, RULES, uuid, {"disabled": True}),
        3,
        operation="test",
    )


def _drop_traits(db: Database, uuid: str) -> Callable[[], None]:
    def once(conn: Connection) -> None:
        provider = get_provider(conn, uuid)
        traits.set_provider_traits(conn, provider, [], provider.generation)

    return lambda: atomically(db, once, 3, operation="test")


@pytest.mark.parametrize("change", ["disabled", "trait_removed"])
def test_a_change_between_the_check_and_the_swap_loses_the_race(db: Database, change: str) -> None:
    if db.dialect == "sqlite":
        pytest.skip("SQLite writers are serialised: nothing commits inside a write")
    root, child = _nested(db)
    if change == "disabled":  # berth's attribute of the root, which allocates nothing
        claim = Claim(X, root, {child: {"VCPU": 1}}, Rules(enabled_only=True))
        between = _disable(db, root)
    else:  # Placement's trait of the provider allocated from
        with db.write() as conn:
            provider = get_provider(conn, child)
            traits.set_provider_traits(conn, provider, ["CUSTOM_A"], provider.generation)
        claim = Claim(X, root, {child: {"VCPU": 1}}, Rules(required_traits=frozenset({"CUSTOM_A"})))
        between = _drop_traits(db, child)
    assert _write(db, claim, between) == batch.CONFLICT
    with db.read() as conn:
        assert conn.execute(select(t.allocations)).all() == []
    # Run again, the claim sees the change: refused for the rule, final.
    assert _write(db, claim) == batch.RULE
