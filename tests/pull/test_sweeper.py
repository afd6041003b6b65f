"""The sweeper and the outbox: republish, dead hosts' claims requeued, timeouts, messages NATS
lost, with real NATS."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from berth import settings as settings_mod
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement import errors
from berth.pull import recovery, sweeper
from berth.pull.model import DELETE_STREAM, queue_name
from berth.pull.runtime import Pull
from berth.scheduler import quotas
from berth.scheduler.quotas import Scope
from tests.pull.conftest import MakeClient, NatsServer
from tests.pull.helpers import (
    V1_2,
    add_hosts,
    call,
    claim,
    enqueue,
    flavor,
    nats_state,
    show,
    states,
    take,
)
from tests.scheduler.conftest import consumers_of

MakePull = Any


@pytest.fixture
def make_pull(db: Database) -> Iterator[MakePull]:
    """A process's pull dispatch (bus and sweeper steps) over ``db``, closed after."""
    made: list[Pull] = []

    def make(nats_url: str, **overrides: Any) -> Pull:
        loaded = settings_mod.load(
            environ={}, database_url=db.url, nats_url=nats_url, nats_retry_s=0, **overrides
        )
        made.append(Pull(db, loaded))
        return made[-1]

    yield make
    for pull in made:
        pull.close()


def _sweep(pull: Pull, later: float = 0, streams: recovery.Streams | None = None) -> sweeper.Pass:
    now = utcnow() + datetime.timedelta(seconds=later)
    return sweeper.run_pass(pull.db, pull.settings, lambda: pull.bus, now=now, streams=streams)


def _published(db: Database) -> list[bool]:
    with db.read() as conn:
        return [bool(p) for p in conn.execute(select(t.pull_instances.c.published)).scalars()]


def test_outbox_publishes_once_nats_is_back(
    db: Database, stopped_nats: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client = make_client(stopped_nats.url)
    small = flavor(client, "small", {"VCPU": 1})  # created: NATS is not needed for that
    got = enqueue(client, flavor="small", count=2)
    assert got.status_code == 202, got.text
    assert _published(db) == [False, False]
    pull = make_pull(stopped_nats.url)
    assert _sweep(pull).nats != "ok"  # still down: nothing lost, nothing marked

    stopped_nats.start()
    report = _sweep(pull)
    assert (report.nats, report.published) == ("ok", 2), report
    assert _published(db) == [True, True]
    with db.write() as conn:  # as if the marking had been lost: sent again, kept once
        conn.execute(update(t.pull_instances).values(published=False))
    assert _sweep(pull).published == 2
    messages = take(stopped_nats.url, queue_name(small["uuid"]))
    assert sorted(m for m, _ in messages) == sorted(f"{i}:0" for i in got.json["instances"])


def _dead_claim(
    db: Database, nats: NatsServer, make_client: MakeClient, **body: Any
) -> tuple[Any, str, list[str], str]:
    client = make_client(nats.url)
    flavor(client, "half", {"VCPU": 2})
    [h1] = add_hosts(db, 1)
    assert call(client, "heartbeat", {"agent": "a1", "hosts": [h1]}).status_code == 204
    got = enqueue(client, flavor="half", count=2, **body)
    request, made = got.json["uuid"], got.json["instances"]
    assert [r["outcome"] for r in claim(client, (made[0], h1, 0))] == ["claimed"]
    return client, request, made, h1


def test_a_dead_hosts_claim_is_requeued_without_its_allocation(
    db: Database, nats_server: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client, request, (i1, i2), h1 = _dead_claim(db, nats_server, make_client)
    pull = make_pull(nats_server.url)
    assert _sweep(pull).requeued == 0  # the host is alive
    assert consumers_of(db) == {i1: h1}

    report = _sweep(pull, later=pull.settings.pull_heartbeat_timeout_s + 1)
    assert (report.requeued, report.quota_gone) == (1, 0), report
    assert consumers_of(db) == {}
    shown = {i["uuid"]: i for i in show(client, request)["instances"]}
    assert shown[i1]["state"] == "queued" and shown[i1]["host"] is None
    queue = queue_name(show(client, request)["flavor"])
    ids = {m for m, _ in take(nats_server.url, queue)}
    assert ids == {f"{i1}:0", f"{i2}:0", f"{i1}:1"}  # attempt 1 is a new message
    [stale] = claim(client, (i1, h1, 0))
    assert stale["outcome"] == "taken"
    assert [r["outcome"] for r in claim(client, (i1, h1, 1))] == ["claimed"]


def test_a_dead_hosts_claim_fails_when_the_quota_is_gone(
    db: Database, nats_server: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client, request, (i1, _), _ = _dead_claim(db, nats_server, make_client)
    with db.write() as conn:
        quotas.set_limits(conn, Scope("p1"), {"instances": 1})
    report = _sweep(make_pull(nats_server.url), later=31)
    assert (report.requeued, report.quota_gone) == (0, 1), report
    failed = next(i for i in show(client, request)["instances"] if i["uuid"] == i1)
    assert failed["state"] == "failed" and "quota gone" in failed["reason"]
    assert consumers_of(db) == {}


def test_deletes_on_a_dead_host_finish_without_it(
    db: Database, nats_server: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client, request, (i1, _), _ = _dead_claim(db, nats_server, make_client)
    assert client.simulate_delete(f"/scheduler/requests/{request}", headers=V1_2).status_code == 202
    assert [m for m, _ in take(nats_server.url, "del-a1", stream=DELETE_STREAM)] == [
        f"{i1}:0:delete"
    ]
    report = _sweep(make_pull(nats_server.url), later=31)
    assert (report.deletes_finished, report.requeued) == (1, 0), report
    assert consumers_of(db) == {}
    assert states(db) == {"deleted": 2}


def test_queued_too_long_fails_and_releases_its_reservation(
    db: Database, nats_server: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client = make_client(nats_server.url)
    flavor(client, "small", {"VCPU": 1})
    request = enqueue(client, flavor="small", count=2).json["uuid"]
    pull = make_pull(nats_server.url, pull_request_timeout_s=60)
    assert _sweep(pull, later=30).failed == 0
    assert _sweep(pull, later=61).failed == 2
    shown = show(client, request)
    assert shown["state"] == "failed"
    assert {i["reason"] for i in shown["instances"]} == {
        "queued for more than 60 s without a host claiming it"
    }
    with db.read() as conn:
        assert quotas.usage(conn, Scope("p1")).reserved == {}


def test_a_claim_never_confirmed_by_a_live_host_fails_after_the_claim_timeout(
    db: Database, nats_server: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client, request, (i1, _), h1 = _dead_claim(db, nats_server, make_client)
    pull = make_pull(nats_server.url, pull_claim_timeout_s=60, pull_heartbeat_timeout_s=3600)
    assert _sweep(pull, later=59).stalled == 0
    report = _sweep(pull, later=61)  # its host heartbeats on (not dead for 3600 s)
    assert (report.stalled, report.requeued) == (1, 0), report
    failed = next(i for i in show(client, request)["instances"] if i["uuid"] == i1)
    assert failed["state"] == "failed" and "without becoming active" in failed["reason"]
    assert consumers_of(db) == {}
    got = call(client, "active", {"instances": [{"instance": i1, "host": h1}]})
    assert [r["outcome"] for r in got.json["results"]] == ["taken"]


def test_a_pass_with_nothing_to_sweep_does_nothing(db: Database) -> None:
    loaded = settings_mod.load(environ={}, database_url=db.url, nats_retry_s=0)

    def no_bus() -> Any:
        raise AssertionError("an idle pass must not reach NATS")

    assert sweeper.idle(db)
    report = sweeper.run_pass(db, loaded, no_bus)
    assert report == sweeper.Pass()
    with db.write() as conn:  # an expired reservation is work: the pass runs (and purges it)
        quotas.reserve(conn, Scope("p", "u"), {"VCPU": 1}, ttl_seconds=1)
    assert not sweeper.idle(db)

    def gone_bus() -> Any:
        raise errors.Unavailable("NATS is not there")

    later = utcnow() + datetime.timedelta(seconds=5)
    report = sweeper.run_pass(db, loaded, gone_bus, now=later)
    assert report.purged > 0
    assert report.nats == "NATS is not there"  # the NATS steps ran too
    assert sweeper.idle(db)


def _lost_metric() -> float:
    return REGISTRY.get_sample_value("berth_pull_swept_total", {"step": "lost"}) or 0.0


def test_messages_nats_lost_are_sent_again(
    db: Database, nats_server: NatsServer, make_client: MakeClient, make_pull: MakePull
) -> None:
    client, request, (i1, _), h1 = _dead_claim(db, nats_server, make_client)
    assert call(client, "active", {"instances": [{"instance": i1, "host": h1}]}).status_code == 200
    assert client.simulate_delete(f"/scheduler/requests/{request}", headers=V1_2).status_code == 202
    queued = enqueue(client, flavor="half", count=3).json["instances"]  # i1 deleting on h1
    queue = queue_name(show(client, request)["flavor"])
    pull, streams = make_pull(nats_server.url), recovery.Streams()
    report = _sweep(pull, later=recovery.GRACE_S + 1, streams=streams)
    assert (report.lost, report.queues_synced) == (0, []), report  # every message is there

    nats_server.empty()  # as a NATS that lost its store: streams, consumers, bucket gone
    report = _sweep(pull, later=-60, streams=streams)  # the rows are too fresh to judge
    assert (report.lost, report.queues_synced) == (0, [queue]), report  # the stream is new
    counted = _lost_metric()
    report = _sweep(pull, later=recovery.GRACE_S + 1, streams=streams)
    assert report.lost == 4, report  # 3 work messages and i1's delete
    assert _lost_metric() - counted == 4
    assert _sweep(pull, later=recovery.GRACE_S + 1, streams=streams).lost == 0  # held now

    consumers, keys = nats_state(nats_server.url)
    assert consumers == keys.keys() == {queue}
    assert sorted(m for m, _ in take(nats_server.url, queue)) == sorted(f"{i}:0" for i in queued)
    deletes = take(nats_server.url, "del-a1", stream=DELETE_STREAM)  # its consumer made again
    assert [m for m, _ in deletes] == [f"{i1}:0:delete"]
    assert states(db) == {"queued": 3, "deleting": 1, "deleted": 1}
