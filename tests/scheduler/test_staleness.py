"""Correct under staleness: a rule changed within a worker's view age is never broken.

A worker selects from memory that may be as old as ``scheduler_index_refresh_ms``
(traits, aggregates) and ``scheduler_refresh_ms`` (berth's host attributes),
with the hosts of its hints read as the request arrived; the claim judges
those rules again (:mod:`berth.scheduler.recheck`).  Each test warms a
worker's view, changes a rule as users do, then places: the host the stale
view prefers (cn1, the biggest, under the default spreading weighers) is
refused in the claim and the instance goes to an alternate, or the answer is
NoValidHost, never a placement breaking the rule.

The sequential tests go through the HTTP API (in process).  With a long view
age the rule changes before the request; with the default one, whose index
is refreshed before every request, it changes between the selection and the
claim, the only time such a view is stale (the hinted instance moves between
the hints' read and the selection).  The concurrent tests change the rule
while threads place, and read back from the database that no allocation
committed after the change breaks it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import Connection, select

from berth.bench import cloud_db
from berth.bench.cloud import ProviderSpec
from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import aggregates, traits
from berth.placement.providers import get_provider
from berth.placement.write.retry import atomically
from berth.scheduler import NoValidHost, RequestSpec, host_attributes, select_destinations
from berth.scheduler import service as scheduler_service
from tests.helpers import in_process_client
from tests.scheduler.conftest import MakeServices, consumers_of, host_uuid
from tests.scheduler.helpers import RULES as STATE_RULES

CN1, CN2, CN3 = host_uuid(1), host_uuid(2), host_uuid(3)
FLAVOR = {"VCPU": 1, "MEMORY_MB": 64}
FAST, MAINT = "CUSTOM_FAST", "CUSTOM_MAINT"
EVERY = "aaaaaaaa-0000-0000-0000-000000000001"  # every host is in it
ISOLATING = "aaaaaaaa-0000-0000-0000-000000000002"  # cn1 only; may isolate it to others
PROJECT, USER = "p1", "u1"
PLACEMENT = {"openstack-api-version": "placement 1.39"}

# View ages: the settings' defaults, and one long enough never to refresh in a test.
AGES = {
    "default": {},
    "long": {"scheduler_index_refresh_ms": 600_000, "scheduler_refresh_ms": 600_000},
}


def _cloud(db: Database) -> None:
    """cn1 > cn2 > cn3 in size (spreading prefers them in that order), all FAST, all in EVERY."""
    specs = [
        ProviderSpec(
            uuid=host_uuid(i),
            name=f"cn{i}",
            inventories={
                # Room for thousands of instances: the placing threads must never fill it.
                "VCPU": (1024 * scale, 0, 1, 1024 * scale, 1, 1.0),
                "MEMORY_MB": (65536 * scale, 0, 1, 65536 * scale, 1, 1.0),
            },
            traits={FAST},
            aggregates={EVERY, ISOLATING} if i == 1 else {EVERY},
        )
        for i, scale in ((1, 4), (2, 2), (3, 1))
    ]
    with db.write() as conn:
        cloud_db.write(conn, specs)
        traits.ensure_trait(conn, MAINT)
        for spec in specs:
            host_attributes.put_host(conn, STATE_RULES, spec.uuid, {"availability_zone": "az1"})


# -- what breaks a rule, read from the database ---------------------------------------------


def _traits_of(conn: Connection, host: str) -> set[str]:
    return {tr.name for tr in traits.provider_traits(conn, get_provider(conn, host).id)}


def _aggregates_of(conn: Connection, host: str) -> set[str]:
    return set(aggregates.provider_aggregates(conn, get_provider(conn, host).id))


def _isolated(conn: Connection, host: str) -> bool:
    tenants = ",".join(
        host_attributes.get_aggregate_metadata(conn, agg).get("filter_tenant_id", "")
        for agg in _aggregates_of(conn, host)
    )
    named = {name.strip() for name in tenants.split(",") if name.strip()}
    return bool(named) and PROJECT not in named


def _host_of(conn: Connection, instance: str) -> str | None:
    query = (
        select(t.resource_providers.c.uuid)
        .join(t.allocations, t.allocations.c.resource_provider_id == t.resource_providers.c.id)
        .where(t.allocations.c.consumer_id == instance)
    )
    return conn.execute(query).scalars().first()


@dataclass(frozen=True)
class Rule:
    """A rule of a request, how users change it on cn1, and how to tell it is broken."""

    body: dict[str, Any]  # the select_destinations body's rule
    change_http: Callable[[falcon.testing.TestClient], None]
    change_db: Callable[[Connection], None]
    breaks: Callable[[Connection, str], bool]  # does ``host`` break the rule now?


def _put(client: falcon.testing.TestClient, path: str, body: Any) -> None:
    got = client.simulate_put(path, json=body, headers=PLACEMENT)
    assert got.status_code in (200, 201, 204), got.text


def _set_traits_http(names: list[str]) -> Callable[[falcon.testing.TestClient], None]:
    def change(client: falcon.testing.TestClient) -> None:
        path = f"/resource_providers/{CN1}/traits"
        generation = client.simulate_get(path, headers=PLACEMENT).json[
            "resource_provider_generation"
        ]
        _put(client, path, {"traits": names, "resource_provider_generation": generation})

    return change


def _set_traits_db(names: list[str]) -> Callable[[Connection], None]:
    def change(conn: Connection) -> None:
        provider = get_provider(conn, CN1)
        traits.set_provider_traits(conn, provider, names, provider.generation)

    return change


def _leave_every_http(client: falcon.testing.TestClient) -> None:
    path = f"/resource_providers/{CN1}/aggregates"
    generation = client.simulate_get(path, headers=PLACEMENT).json["resource_provider_generation"]
    _put(client, path, {"aggregates": [ISOLATING], "resource_provider_generation": generation})


def _leave_every_db(conn: Connection) -> None:
    aggregates.set_aggregates(conn, CN1, [ISOLATING], None, bump=True)


def _host_http(**attrs: Any) -> Callable[[falcon.testing.TestClient], None]:
    return lambda client: _put(client, f"/scheduler/hosts/{CN1}", attrs)


def _host_db(**attrs: Any) -> Callable[[Connection], None]:
    return lambda conn: host_attributes.put_host(conn, STATE_RULES, CN1, attrs)


ISOLATE = {"filter_tenant_id": "someone-else"}
ISOLATING_METADATA = f"/scheduler/aggregates/{ISOLATING}/metadata"
RULES = {
    "required_trait_removed": Rule(
        {"required_traits": [FAST]},
        _set_traits_http([]),
        _set_traits_db([]),
        lambda conn, host: FAST not in _traits_of(conn, host),
    ),
    "forbidden_trait_added": Rule(
        {"forbidden_traits": [MAINT]},
        _set_traits_http([FAST, MAINT]),
        _set_traits_db([FAST, MAINT]),
        lambda conn, host: MAINT in _traits_of(conn, host),
    ),
    "member_of_left": Rule(
        {"member_of": [[EVERY]]},
        _leave_every_http,
        _leave_every_db,
        lambda conn, host: EVERY not in _aggregates_of(conn, host),
    ),
    "zone_changed": Rule(
        {"availability_zone": "az1"},
        _host_http(availability_zone="az2"),
        _host_db(availability_zone="az2"),
        lambda conn, host: host_attributes.get_host(conn, host).availability_zone != "az1",
    ),
    "tenant_isolated": Rule(
        {},
        lambda client: _put(
            client, f"/scheduler/aggregates/{ISOLATING}/metadata", {"metadata": ISOLATE}
        ),
        lambda conn: host_attributes.put_aggregate_metadata(conn, ISOLATING, dict(ISOLATE)),
        _isolated,
    ),
    "host_disabled": Rule(
        {},
        _host_http(disabled=True, availability_zone="az1"),
        _host_db(disabled=True, availability_zone="az1"),
        lambda conn, host: host_attributes.get_host(conn, host).disabled,
    ),
}


# -- sequential: warm, change through the HTTP API, place ------------------------------------


@pytest.fixture(params=list(AGES))
def age(request: pytest.FixtureRequest) -> str:
    """The view age of the worker under test."""
    return str(request.param)


@pytest.fixture
def client(
    db: Database, age: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """A worker (the in-process HTTP app) over a fresh three-host cloud."""
    _cloud(db)
    settings = {"log_requests": False, "scheduler_scan_random_start": False, **AGES[age]}
    with in_process_client(db, monkeypatch, **settings) as client:
        yield client


def _select(client: falcon.testing.TestClient, **body: Any) -> falcon.testing.Result:
    body = {
        "flavor": {"resources": FLAVOR},
        "project_id": PROJECT,
        "user_id": USER,
        **body,
    }
    got = client.simulate_post("/scheduler/select_destinations", json=body)
    assert got.status_code in (200, 409), got.text  # never a 5xx
    if got.status_code == 409:
        assert got.json["errors"][0]["code"] == "berth.scheduler.no_valid_host", got.text
    return got


def _placed(got: falcon.testing.Result) -> dict[str, str]:
    if got.status_code != 200:
        return {}
    return {s["instance_uuid"]: s["host"]["uuid"] for s in got.json["selections"]}


def _around_next_selection(
    monkeypatch: pytest.MonkeyPatch,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> None:
    """Run ``before`` / ``after`` the next request's selection (its hints are read before)."""
    decide = scheduler_service.decide

    def around(*args: Any) -> Any:
        monkeypatch.setattr(scheduler_service, "decide", decide)
        if before is not None:
            before()
        decision = decide(*args)
        if after is not None:
            after()
        return decision

    monkeypatch.setattr(scheduler_service, "decide", around)


@pytest.mark.parametrize("name", list(RULES))
def test_a_rule_changed_within_the_view_age_is_not_broken(
    client: falcon.testing.TestClient,
    db: Database,
    age: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rule = RULES[name]
    warm = _placed(_select(client, **rule.body))
    assert set(warm.values()) == {CN1}  # the view prefers cn1
    if age == "long":  # the view is warm and will not refresh: change the rule now
        rule.change_http(client)
    else:  # a view refreshed before every request is stale from its selection to the claim
        _around_next_selection(monkeypatch, after=lambda: rule.change_http(client))
    got = _select(client, num_instances=2, all_or_nothing=False, **rule.body)
    placed = _placed(got)
    assert placed, got.text  # cn2 and cn3 still follow the rule
    with db.read() as conn:
        assert not [host for host in placed.values() if rule.breaks(conn, host)]
    # The stale view chose cn1, whose claim the rule refused; alternates took the instances.
    assert got.json["refused_claims"] >= 1


# -- hints: the hinted instance moves after the hints' read, before the selection -----------


def _move(client: falcon.testing.TestClient, instance: str, to: str) -> None:
    path = f"/allocations/{instance}"
    generation = client.simulate_get(path, headers=PLACEMENT).json["consumer_generation"]
    body = {
        "allocations": {to: {"resources": FLAVOR}},
        "project_id": PROJECT,
        "user_id": USER,
        "consumer_generation": generation,
        "consumer_type": "INSTANCE",
    }
    _put(client, path, body)


def test_same_host_instance_moved_away(
    client: falcon.testing.TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    (x,) = _placed(_select(client))  # on cn1
    _around_next_selection(monkeypatch, before=lambda: _move(client, x, CN2))
    got = _select(client, scheduler_hints={"same_host": [x]})
    # The hint said cn1, the only host the selection let through: refused, no valid host.
    assert got.status_code == 409
    with db.read() as conn:
        assert _host_of(conn, x) == CN2
    assert set(consumers_of(db)) == {x}


def test_different_host_instance_moved_in(
    client: falcon.testing.TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    (x,) = _placed(_select(client))  # on cn1: the next instance prefers cn2
    _around_next_selection(monkeypatch, before=lambda: _move(client, x, CN2))
    got = _select(client, scheduler_hints={"different_host": [x]})
    placed = _placed(got)
    assert list(placed.values()) == [CN3], got.text
    assert got.json["refused_claims"] == 1


# -- concurrent: the rule changes while threads place ----------------------------------------


@dataclass
class Placing:
    """Threads placing instances with one rule until told to stop."""

    services: Any
    body: dict[str, Any]
    stop: threading.Event = field(default_factory=threading.Event)
    placed: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spec(self) -> RequestSpec:
        b = self.body
        return RequestSpec(
            dict(FLAVOR),
            required_traits=set(b.get("required_traits", ())),
            forbidden_traits=set(b.get("forbidden_traits", ())),
            member_of=[set(any_of) for any_of in b.get("member_of", ())],
            availability_zone=b.get("availability_zone"),
            project_id=PROJECT,
            user_id=USER,
        )

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                answer = select_destinations(self.services, self.spec())
            except NoValidHost:
                continue
            except Exception as exc:  # reported by the test
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            with self.lock:
                self.placed.update((s.instance_uuid, s.host_uuid) for s in answer.selections)

    def count(self) -> int:
        with self.lock:
            return len(self.placed)


def _wait_for(placing: Placing, more: int) -> None:
    wanted = placing.count() + more
    deadline = time.monotonic() + 30
    while placing.count() < wanted and not placing.errors:
        assert time.monotonic() < deadline, "placements stalled"
        time.sleep(0.005)


def _change_and_witness(db: Database, change: Callable[[Connection], None]) -> set[str]:
    """Change the rule; the consumers on cn1 as of the change (its own transaction).

    The change moves cn1's generation before this read: a claim on cn1 that
    committed before it is read here, one after it waited for it (or lost).
    The transaction stays open a moment, so that claims of selections made
    before it queue behind it and commit after it.
    """

    def once(conn: Connection) -> set[str]:
        change(conn)
        query = (
            select(t.allocations.c.consumer_id)
            .join(
                t.resource_providers,
                t.allocations.c.resource_provider_id == t.resource_providers.c.id,
            )
            .where(t.resource_providers.c.uuid == CN1)
        )
        before = set(conn.execute(query).scalars())
        time.sleep(0.2)
        return before

    return atomically(db, once, 50, operation="test")


@pytest.mark.parametrize("name", list(RULES))
def test_a_rule_changed_while_placing_is_not_broken(
    db: Database, make_services: MakeServices, age: str, name: str
) -> None:
    rule = RULES[name]
    _cloud(db)
    overrides = {k.removeprefix("scheduler_"): v for k, v in AGES[age].items()}
    defaults = {"refresh_ms": 1000} if age == "default" else {}
    services = make_services(**{**defaults, **overrides})
    placing = Placing(services, rule.body)
    threads = [threading.Thread(target=placing.run) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(placing, 20)  # views warm, claims in flight
        before = _change_and_witness(db, rule.change_db)
        _wait_for(placing, 40)
    finally:
        placing.stop.set()
        for thread in threads:
            thread.join()
    assert not placing.errors
    assert before <= set(placing.placed)
    with db.read() as conn:
        assert rule.breaks(conn, CN1)
    after = {i for i, host in consumers_of(db).items() if host == CN1} - before
    assert not after, f"{len(after)} instances placed on cn1 after the change"
