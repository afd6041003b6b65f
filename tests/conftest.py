"""Shared fixtures: a migrated database on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB tests run against the real servers named by
``BERTH_TEST_POSTGRES_URL`` / ``BERTH_TEST_MYSQL_URL`` (defaults: the local
``test`` databases).  Each test session creates its own database on each
server (``berth_t<pid>``, dropped at the end) so that concurrent runs cannot
disturb each other.  Where a server does not answer the tests skip with the
reason, unless ``BERTH_TEST_REQUIRE_DATABASES=1`` (set by ``.ci/run``), which
turns a missing database into a failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))

import databases
import xdist_groups

from berth.bench.galera import Cluster, ClusterError, start_cluster
from berth.db.engine import Database

ADMIN_POSTGRES_URL = os.environ.get(
    "BERTH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ADMIN_MYSQL_URL = os.environ.get("BERTH_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE = os.environ.get("BERTH_TEST_REQUIRE_DATABASES") == "1"
SESSION_DB = f"berth_t{os.getpid()}"
POSTGRES_URL = str(make_url(ADMIN_POSTGRES_URL).set(database=SESSION_DB).render_as_string(False))
MYSQL_URL = str(make_url(ADMIN_MYSQL_URL).set(database=SESSION_DB).render_as_string(False))


def _admin(url: str, statement: str) -> None:
    engine = Database(url).engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def session_databases() -> Iterator[None]:
    """Create this session's own PostgreSQL and MariaDB databases; drop them after."""
    made = []
    for admin in (ADMIN_POSTGRES_URL, ADMIN_MYSQL_URL):
        try:
            _admin(admin, f"DROP DATABASE IF EXISTS {SESSION_DB}")
            _admin(admin, f"CREATE DATABASE {SESSION_DB}")
            made.append(admin)
        except Exception:  # unreachable: the tests using it skip or fail with the reason
            continue
    yield
    databases.CLEAN.close()
    for admin in made:
        try:
            _admin(admin, f"DROP DATABASE IF EXISTS {SESSION_DB}")
        except Exception:  # a server that went away keeps its database
            continue


# Where a bench command run without --out appends its results: the repository's root.
STRAY_RESULTS = Path(__file__).resolve().parent.parent / "results.jsonl"


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_size, found.st_mtime_ns


@pytest.fixture(autouse=True)
def no_results_in_the_repository() -> Iterator[None]:
    """Fail the test that ran a bench command without ``--out`` (into the repository)."""
    before = _stat(STRAY_RESULTS)
    yield
    assert _stat(STRAY_RESULTS) == before, f"a bench command wrote {STRAY_RESULTS}: use --out"


ALL_BACKENDS = ("sqlite", "postgresql", "mysql")
# BERTH_TEST_BACKENDS=sqlite (comma-separated) runs only those backends' variants.
CHOSEN = os.environ.get("BERTH_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
BACKENDS = [name for name in ALL_BACKENDS if name in CHOSEN]


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None]:
    """Deselect the variants of backends BERTH_TEST_BACKENDS leaves out, whatever the param;
    then give each test its xdist group (tests/xdist_groups.py), before pytest-xdist reads
    the groups; once every other hook (pytest's own reordering) is done, order them."""
    _deselect_backends(config, items)
    xdist_groups.assign(config, items)
    yield
    xdist_groups.order(config, items)


def _deselect_backends(config: pytest.Config, items: list[pytest.Item]) -> None:
    left_out = set(ALL_BACKENDS) - set(BACKENDS)
    if not left_out:
        return
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        values = spec.params.values() if spec is not None else ()
        named = {v for v in values if isinstance(v, str)} | set(
            item.name.replace("[", "-").replace("]", "").split("-")
        )
        (drop if named & left_out else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def backend_url(name: str, tmp_path: Path) -> str:
    """The URL for a backend name ('sqlite' gets a fresh file)."""
    if name == "sqlite":
        return f"sqlite:///{tmp_path / 'berth.sqlite'}"
    return POSTGRES_URL if name == "postgresql" else MYSQL_URL


def _reachable(db: Database) -> str | None:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the driver's own error says why
        return f"{db.dialect} not reachable at {db.engine.url!r}: {exc.__class__.__name__}: {exc}"
    return None


def wipe(db: Database) -> None:
    """Drop every berth table (and alembic's), leaving an empty database."""
    databases.wipe(db)
    databases.CLEAN.forget(db)


def fresh_database(name: str, tmp_path: Path) -> Database:
    """A freshly migrated database of backend ``name`` (skips if absent)."""
    db = Database(backend_url(name, tmp_path))
    problem = _reachable(db)
    if problem:
        if REQUIRE:
            pytest.fail(problem)
        pytest.skip(problem)
    if name == "sqlite":
        databases.CLEAN.sqlite_copy(tmp_path / "berth.sqlite")
    else:
        databases.CLEAN.fresh(db)
    return db


def server_database_url(name: str) -> str | None:
    """A clean database URL for a berth server under test (None = SQLite in its data dir):
    migrated, with the standard catalog and nothing else.

    Skips (or fails, when databases are required) if the server does not answer.
    """
    if name == "sqlite":
        return None
    url = POSTGRES_URL if name == "postgresql" else MYSQL_URL
    db = Database(url)
    problem = _reachable(db)
    if problem:
        if REQUIRE:
            pytest.fail(problem)
        pytest.skip(problem)
    databases.CLEAN.fresh(db)
    db.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database on each backend in turn."""
    database = fresh_database(request.param, tmp_path)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database only (for fast logic tests)."""
    database = fresh_database("sqlite", tmp_path)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def galera() -> Iterator[Cluster]:
    """This session's three-node Galera cluster (tests/galera/conftest.py says more)."""
    try:
        cluster = start_cluster()
    except ClusterError as exc:
        if REQUIRE:
            pytest.fail(f"Galera cluster: {exc}")
        pytest.skip(f"Galera cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
