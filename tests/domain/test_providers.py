"""Creating resource providers: what the write returns is what is stored."""

from __future__ import annotations

import uuid as uuidlib

import pytest
from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import errors, providers


def _uuid() -> str:
    return str(uuidlib.uuid4())


def test_create_returns_the_row_as_stored(db: Database) -> None:
    root_uuid, child_uuid, grandchild_uuid = _uuid(), _uuid(), _uuid()
    with db.write() as conn:
        made = [
            providers.create(conn, root_uuid, "root", None),
            providers.create(conn, child_uuid, "child", root_uuid),
            providers.create(conn, grandchild_uuid, "grandchild", child_uuid),
        ]
    with db.read() as conn:
        stored = [providers.get_provider(conn, u) for u in (root_uuid, child_uuid, grandchild_uuid)]
    assert made == stored
    assert {p.root_uuid for p in stored} == {root_uuid}
    assert stored[0].root_provider_id == stored[0].id


def test_create_records_the_change(db: Database) -> None:
    with db.write() as conn:
        made = providers.create(conn, _uuid(), "one", None)
        logged = conn.execute(select(t.change_log.c.provider_id)).scalars().all()
    assert made.id in logged


@pytest.mark.parametrize(
    ("same_uuid", "same_name", "clashes"),
    [
        (True, False, "uuid: {uuid}"),
        (False, True, "name: {name}"),
        (True, True, "uuid: {uuid}, name: {name}"),
    ],
)
def test_create_names_every_clash(
    db: Database, same_uuid: bool, same_name: bool, clashes: str
) -> None:
    first = _uuid()
    with db.write() as conn:
        providers.create(conn, first, "taken", None)
    uuid = first if same_uuid else _uuid()
    name = "taken" if same_name else "free"
    with pytest.raises(errors.Conflict) as caught, db.write() as conn:
        providers.create(conn, uuid, name, None)
    expected = clashes.format(uuid=uuid, name=name)
    assert caught.value.message == f"Conflicting resource provider {expected} already exists."
    assert caught.value.code == errors.DUPLICATE_NAME
    with db.read() as conn:
        assert providers.count(conn) == 1
