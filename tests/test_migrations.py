"""The migrations build exactly the tables berth declares, on each database."""

from __future__ import annotations

import datetime
import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, insert, inspect, select, table, text

from berth.db import migrate, tables
from berth.db.engine import Database
from berth.scheduler import host_attributes


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), tables.metadata))


def test_the_migrations_build_the_declared_tables(db: Database) -> None:
    assert _differences(db) == []


def test_flavors_migrate_down_and_up_again(db: Database) -> None:
    with db.engine.begin() as conn:
        command.downgrade(migrate._config(db, conn), "0003")
    names = set(inspect(db.engine).get_table_names())
    assert {"scheduler_flavors", "scheduler_flavor_changes"} & names == set()
    assert "scheduler_server_groups" in names
    migrate.upgrade(db)
    assert _differences(db) == []


P1 = "11111111-0000-0000-0000-000000000001"
P2 = "11111111-0000-0000-0000-000000000002"
GONE = "11111111-0000-0000-0000-0000000000ff"  # a row a deleted provider left behind
AGGREGATE = "22222222-0000-0000-0000-000000000001"
WHEN = datetime.datetime(2026, 12, 1, 10, 30, 0)

_hosts = table(
    "scheduler_hosts",
    column("provider_uuid"),
    column("disabled"),
    column("disabled_reason"),
    column("availability_zone"),
    column("metrics"),
    column("revision"),
    column("created_at"),
    column("updated_at"),
)


def _to(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        command.downgrade(migrate._config(db, conn), revision)


def _old_host(uuid: str, disabled: bool, zone: str | None, metrics: str) -> dict[str, object]:
    return {
        "provider_uuid": uuid,
        "disabled": disabled,
        "disabled_reason": "maintenance" if disabled else None,
        "availability_zone": zone,
        "metrics": metrics,
        "revision": 1,
        "created_at": WHEN - datetime.timedelta(days=1),
        "updated_at": WHEN,
    }


def _state_rows(db: Database) -> dict[tuple[str, str], tuple[int, datetime.datetime, object]]:
    state = tables.scheduler_host_state
    with db.engine.connect() as conn:
        rows = conn.execute(select(state)).all()
    return {
        (r.provider_uuid, r.namespace): (r.generation, r.received_at, json.loads(r.body))
        for r in rows
    }


def test_0007_moves_host_rows_to_namespaces_and_back(db: Database) -> None:
    _to(db, "0006")
    with db.engine.begin() as conn:
        for uuid in (P1, P2):
            conn.execute(
                insert(tables.resource_providers).values(uuid=uuid, name=uuid, generation=0)
            )
        conn.execute(
            insert(_hosts),
            [
                _old_host(P1, True, "az1", '{"cpu.percent": 5.0}'),
                _old_host(P2, False, None, "{}"),  # nothing to say: no namespace
                _old_host(GONE, True, None, "{}"),
            ],
        )
        conn.execute(text("UPDATE scheduler_revisions SET value = 7 WHERE name = 'state'"))
        conn.execute(
            text(
                "INSERT INTO scheduler_aggregates (aggregate_uuid, metadata, revision) "
                f"VALUES ('{AGGREGATE}', '{{\"ssd\": \"true\"}}', 7)"
            )
        )
    migrate.upgrade(db)
    assert _differences(db) == []
    operator = {"disabled": True, "disabled_reason": "maintenance", "availability_zone": "az1"}
    assert _state_rows(db) == {
        (P1, "operator"): (1, WHEN, operator),
        (P1, "compute"): (1, WHEN, {"metrics": {"cpu.percent": 5.0}}),
    }
    with db.read() as conn:
        attrs = host_attributes.get_host(conn, P1)
        assert (attrs.disabled, attrs.availability_zone) == (True, "az1")
        assert host_attributes.get_aggregate_metadata(conn, AGGREGATE) == {"ssd": "true"}
    _to(db, "0006")
    with db.engine.connect() as conn:
        back = conn.execute(select(_hosts)).all()
    assert [
        (r.provider_uuid, r.disabled, r.availability_zone, json.loads(r.metrics)) for r in back
    ] == [(P1, True, "az1", {"cpu.percent": 5.0})]
    migrate.upgrade(db)
    assert _differences(db) == []
    assert set(_state_rows(db)) == {(P1, "operator"), (P1, "compute")}
