"""The migrations build exactly the tables berth declares, on each database."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from berth.db import migrate, tables
from berth.db.engine import Database


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
