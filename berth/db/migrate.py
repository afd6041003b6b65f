"""Schema migrations (alembic) driven from code, for ``berth db ...``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from berth.db.engine import Database

SCRIPTS = Path(__file__).parent / "migrations"


def _config(db: Database, connection: object) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    with db.engine.begin() as conn:
        conn.info["berth_write"] = True
        command.upgrade(_config(db, conn), revision)


def current_revision(db: Database) -> str | None:
    """The revision the database is at (None when never migrated)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision berth ships."""
    script = ScriptDirectory(str(SCRIPTS))
    return script.get_current_head()


def revisions() -> list[tuple[str, str]]:
    """(revision, message) for every shipped migration, oldest first."""
    script = ScriptDirectory(str(SCRIPTS))
    return [(r.revision, r.doc or "") for r in reversed(list(script.walk_revisions()))]
