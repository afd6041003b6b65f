"""A usage count reads the project's allocations, never every allocation of the cloud.

The project's id is a sub-select, unknown when the statement is planned, so
a planner guessing the project's size may join the other way round: read
all allocations and keep the project's.  That made every enqueue cost a scan
of the whole table, growing with the cloud rather than with the project.
These tests ask the database for its plan on a cloud of many projects, with
fresh statistics.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from typing import Any

import pytest
from sqlalchemy import Connection, insert, text

from berth.db.engine import Database
from berth.db.tables import ALLOC, CONSUMER, PROJECT, USER
from berth.scheduler.quotas.model import Scope, moment
from berth.scheduler.quotas.usage import _STATEMENTS, usage_of

PROJECTS = 100
CONSUMERS = 20_000


def _populate(conn: Connection) -> None:
    """Consumers spread over projects of very different sizes, two allocations each."""
    rnd = random.Random(7)
    conn.execute(insert(PROJECT), [{"id": i + 1, "external_id": f"p{i}"} for i in range(PROJECTS)])
    conn.execute(insert(USER), [{"id": 1, "external_id": "u0"}])
    weights = [1 / (i + 1) for i in range(PROJECTS)]
    consumers, allocations = [], []
    for i in range(CONSUMERS):
        uuid = str(uuidlib.UUID(int=rnd.getrandbits(128)))
        project = rnd.choices(range(PROJECTS), weights)[0] + 1
        consumers.append({"id": i + 1, "uuid": uuid, "project_id": project, "user_id": 1})
        for rc, used in ((0, 2), (1, 1024)):
            allocations.append(
                {
                    "resource_provider_id": 1,
                    "consumer_id": uuid,
                    "resource_class_id": rc,
                    "used": used,
                }
            )
    conn.execute(insert(CONSUMER), consumers)
    conn.execute(insert(ALLOC), allocations)


def _plan(conn: Connection, statement: Any, params: dict[str, Any]) -> str:
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql = str(compiled)
    rows = conn.exec_driver_sql(f"EXPLAIN {sql}", compiled.construct_params(params)).all()
    if conn.dialect.name == "postgresql":
        return "\n".join(r[0] for r in rows)
    # MariaDB: one row per table read: (id, select_type, table, type, ...)
    return "\n".join(f"{r.table} {r.type}" for r in rows)


@pytest.mark.parametrize("shape", [(u, c) for u in (False, True) for c in (False, True)])
def test_the_plan_reads_the_project_allocations_only(
    db: Database, shape: tuple[bool, bool]
) -> None:
    dialect = db.engine.dialect.name
    if dialect == "sqlite":
        pytest.skip("SQLite joins in the written order where an index serves it")
    with db.write() as conn:
        _populate(conn)
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        analyze = "ANALYZE" if dialect == "postgresql" else "ANALYZE TABLE allocations, consumers"
        conn.execute(text(analyze))
    params = {"project": "p60", "user": "u0", "now": moment(None)}
    with db.read() as conn:
        plan = _plan(conn, _STATEMENTS[(dialect, *shape)], params)
    if dialect == "postgresql":
        assert "Seq Scan on allocations" not in plan, plan
    else:
        assert "allocations ALL" not in plan, plan
    # and the count is right: the consumers of p60 and their allocations
    with db.read() as conn:
        found = usage_of(conn, "p60", "u0")
        held = conn.execute(
            text(
                "SELECT count(*) FROM consumers c JOIN projects p ON p.id = c.project_id "
                "WHERE p.external_id = 'p60'"
            )
        ).scalar_one()
    counted = found[Scope("p60")]
    assert counted.in_use["instances"] == held
