"""``berth import`` is all or nothing: rows it cannot copy change nothing unless allowed.

The source here is a Placement-shaped database made with berth's own schema
(the tables mirror Placement's) in which one allocation and one provider
trait name ids the source's own class and trait tables do not hold, as a
damaged or hand-edited Placement database would.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from berth import cli, importer
from berth.db import migrate
from berth.db import tables as t
from berth.db.engine import Database

NOW = datetime.datetime(2026, 1, 1)
RP_UUID = "11111111-1111-4111-8111-111111111111"
CONSUMER = "22222222-2222-4222-8222-222222222222"


def _source(path: Path) -> str:
    """A source database with one provider, its VCPU inventory, and two rows that cannot map."""
    url = f"sqlite:///{path}"
    migrate.upgrade(Database(url))
    engine = create_engine(url)  # foreign keys not enforced: the damage is allowed in
    with engine.begin() as conn:
        vcpu = conn.execute(
            select(t.resource_classes.c.id).where(t.resource_classes.c.name == "VCPU")
        ).scalar()
        if vcpu is None:
            conn.execute(t.resource_classes.insert().values(id=0, name="VCPU", created_at=NOW))
            vcpu = 0
        conn.execute(
            t.resource_providers.insert().values(
                id=1, uuid=RP_UUID, name="cn1", generation=1, root_provider_id=1, created_at=NOW
            )
        )
        conn.execute(
            t.inventories.insert().values(
                resource_provider_id=1,
                resource_class_id=vcpu,
                total=8,
                reserved=0,
                min_unit=1,
                max_unit=8,
                step_size=1,
                allocation_ratio=1.0,
                created_at=NOW,
            )
        )
        conn.execute(t.projects.insert().values(id=1, external_id="p", created_at=NOW))
        conn.execute(t.users.insert().values(id=1, external_id="u", created_at=NOW))
        conn.execute(
            t.consumers.insert().values(
                id=1, uuid=CONSUMER, project_id=1, user_id=1, generation=1, created_at=NOW
            )
        )
        # The second allocation is damage: a class id the source's own table does not
        # hold (and the provider trait below names a trait id it does not hold).
        for class_id, used in ((vcpu, 2), (9999, 1)):
            allocation = {"resource_provider_id": 1, "consumer_id": CONSUMER, "used": used}
            conn.execute(
                t.allocations.insert().values(
                    **allocation, resource_class_id=class_id, created_at=NOW
                )
            )
        conn.execute(
            t.resource_provider_traits.insert().values(
                resource_provider_id=1, trait_id=99999, created_at=NOW
            )
        )
    engine.dispose()
    return url


def _count(db: Database, table: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
def target(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'berth.sqlite'}")
    migrate.upgrade(db)
    return db


def test_rows_that_cannot_be_copied_change_nothing(tmp_path: Path, target: Database) -> None:
    source = _source(tmp_path / "placement.sqlite")
    with pytest.raises(importer.ImportIncomplete) as caught:
        importer.run(source, target)
    assert len(caught.value.skipped) == 2
    assert any(
        "allocations" in line and "resource_class_id" in line for line in caught.value.skipped
    )
    assert _count(target, t.resource_providers) == 0  # not half-written
    assert _count(target, t.allocations) == 0


def test_a_forced_import_that_fails_keeps_the_old_data(tmp_path: Path, target: Database) -> None:
    with target.write() as conn:
        conn.execute(
            t.resource_providers.insert().values(
                uuid="33333333-3333-4333-8333-333333333333",
                name="old",
                generation=0,
                created_at=NOW,
            )
        )
    with pytest.raises(importer.ImportIncomplete):
        importer.run(_source(tmp_path / "placement.sqlite"), target, force=True)
    with target.read() as conn:
        assert list(conn.execute(select(t.resource_providers.c.name)).scalars()) == ["old"]


def test_allow_partial_copies_the_rest_and_lists_the_loss(tmp_path: Path, target: Database) -> None:
    report = importer.run(_source(tmp_path / "placement.sqlite"), target, allow_partial=True)
    assert len(report.skipped) == 2
    assert report.copied["allocations"] == _count(target, t.allocations) == 1
    assert _count(target, t.resource_providers) == 1


def test_cli_exits_non_zero_with_the_report(tmp_path: Path) -> None:
    source = _source(tmp_path / "placement.sqlite")
    args = ["import", "--from", source, "--database-url", f"sqlite:///{tmp_path / 'b.sqlite'}"]
    failed = CliRunner().invoke(cli.app, args, env={"COLUMNS": "200"})
    assert failed.exit_code == 1, failed.output
    assert "cannot copy" in failed.output and "--allow-partial" in failed.output
    partial = CliRunner().invoke(cli.app, [*args, "--allow-partial"], env={"COLUMNS": "200"})
    assert partial.exit_code == 0, partial.output
    assert "skipped" in partial.output
