"""The queue manager: table, consumers and bucket kept in step; ``berth queues``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from berth import settings as settings_mod
from berth.cli import app
from berth.db.engine import Database
from berth.pull import queues
from berth.pull.bus import Bus
from berth.pull.model import WORK_STREAM, queue_name
from tests.pull.conftest import MakeClient, NatsServer
from tests.pull.helpers import V1_2, enqueue, flavor, nats_state, show


def test_flavors_make_and_remove_their_queues(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    small = flavor(client, "small", {"VCPU": 1}, forbidden_traits=["HW_CPU_X86_SSE"])
    big = flavor(client, "big", {"VCPU": 4})
    names = {queue_name(small["uuid"]), queue_name(big["uuid"])}
    consumers, keys = nats_state(nats_server.url)
    assert consumers == names and keys.keys() == names
    assert keys[queue_name(small["uuid"])] == {
        "name": queue_name(small["uuid"]),
        "subject": f"berth.work.{queue_name(small['uuid'])}",
        "flavor": {"uuid": small["uuid"], "name": "small"},
        "resources": {"VCPU": 1},
        "required": [],
        "forbidden": ["HW_CPU_X86_SSE"],
        "capabilities": [],
    }
    request = enqueue(client, flavor="small", count=2).json["uuid"]

    deleted = client.simulate_delete(f"/scheduler/flavors/{small['uuid']}", headers=V1_2)
    assert deleted.status_code == 204, deleted.text
    consumers, keys = nats_state(nats_server.url)
    assert consumers == keys.keys() == {queue_name(big["uuid"])}
    shown = show(client, request)
    assert shown["state"] == "failed"
    assert "was deleted while the instance was queued" in shown["instances"][0]["reason"]


def test_reconcile_removes_strays_and_restores_what_nats_lost(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client(nats_server.url)
    small = flavor(client, "small", {"VCPU": 1})
    settings = settings_mod.load(environ={}, database_url=db.url, nats_url=nats_server.url)
    bus = Bus(nats_server.url, 2.0, 0)
    try:
        stray = "f" + "0" * 32
        bus.ensure_consumer(WORK_STREAM, queues.consumer_config(stray, "berth.work.x", settings))
        bus.kv_put("berth-queues", stray, b"{}")
        bus.delete_consumer(WORK_STREAM, queue_name(small["uuid"]))
        report = queues.sync(db, bus, settings)
        assert report.consumers_created == [queue_name(small["uuid"])]
        assert (report.consumers_removed, report.keys_removed) == ([], [])  # not ours to remove
        consumers, keys = nats_state(nats_server.url)
        assert consumers == keys.keys() == {queue_name(small["uuid"]), stray}
        report = queues.sync(db, bus, settings, prune=True)
    finally:
        bus.close()
    assert (report.consumers_removed, report.keys_removed) == ([stray], [stray])
    consumers, keys = nats_state(nats_server.url)
    assert consumers == keys.keys() == {queue_name(small["uuid"])}


def test_cli_lists_and_syncs(
    db: Database, nats_server: NatsServer, make_client: MakeClient
) -> None:
    client = make_client("nats://127.0.0.1:1")  # flavors made while NATS is away
    small = flavor(client, "small", {"VCPU": 1})
    runner = CliRunner()
    url = ["--database-url", db.url]
    listed = runner.invoke(app, ["queues", "list", *url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [q["name"] for q in json.loads(listed.output)] == [queue_name(small["uuid"])]
    assert nats_state(nats_server.url)[0] == set()

    down = runner.invoke(app, ["queues", "sync", *url, "--nats-url", "nats://127.0.0.1:1"])
    assert down.exit_code == 1 and "unreachable" in down.output
    synced = runner.invoke(app, ["queues", "sync", *url, "--nats-url", nats_server.url])
    assert synced.exit_code == 0, synced.output
    assert "consumers created: 1" in synced.output
    assert nats_state(nats_server.url)[0] == {queue_name(small["uuid"])}
