"""Clean databases for each test, without migrating again for each one.

Migrating from nothing costs about 0.5 s on PostgreSQL, 0.8 s on MariaDB and
0.1 s on SQLite on a quiet machine, and several times that under the suite's
load: several minutes of the suite's time.  So each session migrates each
database once and takes note of what a fresh one holds (the standard resource
classes and traits); a test that asks for a fresh database then gets one put
back in that state:

* on PostgreSQL and MariaDB, the rows of every table are deleted but the
  catalog's standard rows (custom classes and traits go); what a test cannot
  have left behind otherwise (another schema revision, a table missing, a
  catalog that lost a standard row) is found, and the database is then
  dropped and migrated as before;
* on SQLite, a copy of a migrated file.

Ids are not started again: a test sees ids where the tests before it left
them, as a service's database does.

The session owns :data:`CLEAN` (``tests/conftest.py``'s ``session_databases``
forgets it at the end, with the databases).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, func, select, text

from berth.db import migrate, tables
from berth.db.engine import Database
from berth.placement import catalog

CATALOG = (tables.RC, tables.TRAIT)


@dataclass(frozen=True)
class Baseline:
    """What a freshly migrated database holds: the catalog's rows and the schema revision."""

    revision: str | None
    catalog: dict[str, tuple[int, int]]  # table -> (rows, highest id)


@dataclass
class CleanDatabases:
    """Per URL, the baseline of a database this session migrated; SQLite's template file."""

    baselines: dict[str, Baseline] = field(default_factory=dict)
    template_dir: Path | None = None

    def fresh(self, db: Database) -> None:
        """Make ``db`` (PostgreSQL or MariaDB) as a freshly migrated one."""
        url = db.engine.url.render_as_string(hide_password=False)
        baseline = self.baselines.get(url)
        if baseline is not None and _restore(db, baseline):
            return
        self.baselines.pop(url, None)
        wipe(db)
        migrate.upgrade(db)
        catalog.sync(db)
        self.baselines[url] = _baseline(db)

    def forget(self, db: Database) -> None:
        """``db`` was changed behind this object's back: migrate it again next time."""
        self.baselines.pop(db.engine.url.render_as_string(hide_password=False), None)

    def sqlite_copy(self, path: Path) -> None:
        """A freshly migrated SQLite database at ``path``."""
        if self.template_dir is None:
            self.template_dir = Path(tempfile.mkdtemp(prefix="berth-test-template-"))
            template = Database(f"sqlite:///{self.template_dir / 'template.sqlite'}")
            try:
                migrate.upgrade(template)
                catalog.sync(template)
                with template.engine.connect() as conn:
                    conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            finally:
                template.dispose()
        shutil.copyfile(self.template_dir / "template.sqlite", path)

    def close(self) -> None:
        self.baselines.clear()
        if self.template_dir is not None:
            shutil.rmtree(self.template_dir, ignore_errors=True)
            self.template_dir = None


def wipe(db: Database) -> None:
    """Drop every berth table (and alembic's), leaving an empty database."""
    with db.engine.begin() as conn:
        if db.dialect == "mysql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        tables.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if db.dialect == "mysql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))


def _catalog(conn: Connection) -> dict[str, tuple[int, int]]:
    found = {}
    for table in CATALOG:
        rows, top = conn.execute(select(func.count(), func.max(table.c.id))).one()
        found[table.name] = (int(rows), int(top or 0))
    return found


def _baseline(db: Database) -> Baseline:
    with db.engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            if table not in CATALOG:
                left = conn.execute(select(func.count()).select_from(table)).scalar_one()
                assert left == 0, f"a fresh database holds rows in {table.name}"
        return Baseline(migrate.current_revision(db), _catalog(conn))


def _restore(db: Database, baseline: Baseline) -> bool:
    """Back to ``baseline`` by deleting rows; False where that cannot be done."""
    try:
        if migrate.current_revision(db) != baseline.revision:
            return False
        with db.engine.begin() as conn:
            if db.dialect == "mysql":
                conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for table in reversed(tables.metadata.sorted_tables):
                if table not in CATALOG:
                    conn.execute(table.delete())
            for table in CATALOG:
                top = baseline.catalog[table.name][1]
                conn.execute(table.delete().where(table.c.id > top))
            if db.dialect == "mysql":
                conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
            return _catalog(conn) == baseline.catalog
    except Exception:  # a table gone, a column changed: migrate from nothing instead
        return False


# The session's clean databases (tests/conftest.py's session_databases closes it).
CLEAN = CleanDatabases()
