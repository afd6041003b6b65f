"""The real OpenStack Placement, side by side with berth: ``berth bench reference start|stop``.

``openstack-placement`` goes into its own virtual environment (never
berth's), with gunicorn and the drivers for the database kind.  It gets its
own database on the same server as berth's (SQLite: a file beside the
state; PostgreSQL / MariaDB: a ``berth_reference`` database, recreated on
each start), noauth2, and serves on another port.  The state (URL, pid,
database) is kept in a JSON file so that ``--against reference`` and
``stop`` find it.  The same steps as ``scripts/reference``, in Python.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from berth.bench.launch import wait_ready
from berth.db.engine import Database, normalise_url
from berth.placement import catalog

VERSION = "16.0.0"
DATABASE = "berth_reference"
# The driver each database kind needs inside the reference's venv.
DRIVERS = {"sqlite": "", "postgresql": "psycopg2-binary", "mysql": "pymysql"}


def home() -> Path:
    """Where the venv and the state live (BERTH_BENCH_REFERENCE_HOME)."""
    default = Path.home() / ".cache" / "berth" / "bench-reference"
    return Path(os.environ.get("BERTH_BENCH_REFERENCE_HOME", default))


@dataclass
class ReferenceState:
    """A running reference."""

    url: str
    pid: int
    database_url: str  # as berth's lab reaches it (SQLAlchemy URL with berth's drivers)
    placement_database_url: str  # as the reference's own config names it
    workers: int
    log: str


def _state_file() -> Path:
    """Where the running reference's state is kept."""
    return home() / "state.json"


def current() -> ReferenceState | None:
    """The running reference, if any (a stale state file is removed)."""
    path = _state_file()
    if not path.exists():
        return None
    state = ReferenceState(**json.loads(path.read_text()))
    try:
        os.kill(state.pid, 0)
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return state


def venv() -> Path:
    """The reference's virtual environment."""
    return home() / "venv"


def install(kind: str) -> Path:
    """Create the venv (idempotent) with openstack-placement, gunicorn and the driver."""
    py = venv() / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv())], check=True)
    wanted = [f"openstack-placement=={VERSION}", "gunicorn", "pymysql"]
    if DRIVERS.get(kind):
        wanted.append(DRIVERS[kind])
    probe = "import placement, gunicorn, pymysql" + (", psycopg2" if kind == "postgresql" else "")
    if subprocess.run([str(py), "-c", probe], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", *wanted], check=True)
    return py


def _databases(berth_url: str) -> tuple[str, str, str]:
    """(kind, URL for the lab, URL for the reference) of a fresh database beside berth's."""
    url = make_url(normalise_url(berth_url))
    kind = url.get_backend_name()
    if kind == "sqlite":
        path = home() / "placement.sqlite"
        path.unlink(missing_ok=True)
        return kind, f"sqlite:///{path}", f"sqlite:///{path}"
    admin = Database(url.render_as_string(hide_password=False))
    engine = admin.engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    lab = url.set(database=DATABASE)
    driver = "postgresql+psycopg2" if kind == "postgresql" else "mysql+pymysql"
    theirs = lab.set(drivername=driver)
    return (
        kind,
        lab.render_as_string(hide_password=False),
        theirs.render_as_string(hide_password=False),
    )


def _config(placement_url: str) -> Path:
    """Write the reference's placement.conf (noauth2, its database)."""
    conf = home() / "placement.conf"
    conf.write_text(
        "[DEFAULT]\ndebug = False\n[api]\nauth_strategy = noauth2\n"
        f"[placement_database]\nconnection = {placement_url}\n"
    )
    return conf


def start(berth_database_url: str, port: int = 8792, workers: int = 2) -> ReferenceState:
    """Install if needed, create its database, sync the schema, serve with gunicorn."""
    if current() is not None:
        raise RuntimeError("the reference is already running (berth bench reference stop)")
    home().mkdir(parents=True, exist_ok=True)
    kind, lab_url, placement_url = _databases(berth_database_url)
    install(kind)
    _config(placement_url)
    env = {**os.environ, "OS_PLACEMENT_CONFIG_DIR": str(home())}
    bin_dir = venv() / "bin"
    manage = [str(bin_dir / "placement-manage"), "--config-dir", str(home()), "db", "sync"]
    subprocess.run(manage, env=env, check=True, capture_output=True)
    # Standard classes and traits written once here: otherwise every worker inserts them
    # as it boots, and on SQLite the losers die with "database is locked".
    db = Database(lab_url)
    catalog.sync(db)
    db.dispose()
    log = home() / "gunicorn.log"
    argv = [str(bin_dir / "gunicorn"), "--no-control-socket", "-w", str(workers)]
    argv += ["-b", f"127.0.0.1:{port}", "placement.wsgi.api:application"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    time.sleep(2.0)  # every worker has booted (or died) by now
    if proc.poll() is not None:
        raise RuntimeError(f"the reference exited after starting; see {log}")
    state = ReferenceState(url, proc.pid, lab_url, placement_url, workers, str(log))
    _state_file().write_text(json.dumps(asdict(state), indent=2))
    return state


def stop() -> bool:
    """Stop the running reference; False when none was running."""
    state = current()
    if state is None:
        return False
    os.kill(state.pid, signal.SIGTERM)
    for _ in range(80):
        try:
            os.kill(state.pid, 0)
        except OSError:
            break
        time.sleep(0.25)
    _state_file().unlink(missing_ok=True)
    return True
