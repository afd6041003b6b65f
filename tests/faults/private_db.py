"""Private database servers for fault tests: real PostgreSQL and MariaDB, ours to stop and kill.

The machine's shared servers (5432, 3306) serve everybody's tests and must
never be stopped.  A fault test instead starts its own server from the
installed binaries, in a temporary data directory, on a free loopback port,
with durability left as shipped (``fsync`` on, InnoDB flushing its log at
every commit), and then stops, kills or restarts it at will::

    with PrivatePostgres() as pg:          # initdb + start (a few seconds)
        url = pg.create_database("berth")  # postgresql+psycopg://...
        pg.stop()                          # clean shutdown; clients see it go
        pg.start()
        pg.kill()                          # a crash: no shutdown, recovery at start
        pg.start()

:meth:`PrivateServer.destroy` (the context manager's exit) stops the server
and removes its directory; an ``atexit`` hook does the same for any server
still running when the interpreter ends, so a failed test leaves nothing
behind.  Run as root, the servers run as their system users (``postgres``,
``mysql``), who then own the data directory; run as anyone else, as that user.

:func:`available` says whether the binaries are installed.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from berth.bench.launch import die_with_parent

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

_running: set[PrivateServer] = set()  # started and not stopped
_made: set[PrivateServer] = set()  # not destroyed yet


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin() -> dict[str, str] | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        return None
    bindir = Path(initdb).parent
    return {"initdb": str(bindir / "initdb"), "pg_ctl": str(bindir / "pg_ctl")}


def _mariadb_bin() -> dict[str, str] | None:
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    return {"mariadbd": server, "mariadb-install-db": install} if server and install else None


def available(kind: str) -> str | None:
    """None when a private ``postgresql`` or ``mysql`` server can be started, else why not."""
    cls = SERVERS[kind]
    return None if cls.binaries() else f"{cls.kind} server binaries ({cls.needs}) not installed"


class PrivateServer:
    """A database server of our own: start, stop (clean), kill (crash), restart, destroy."""

    kind = ""
    user = ""  # the system user the server runs as when we are root
    needs = ""  # the programs it is started with

    @staticmethod
    def binaries() -> dict[str, str] | None:
        """Program name -> path of each program in ``needs`` (None: one is missing)."""
        raise NotImplementedError

    def __init__(self, port: int | None = None) -> None:
        found = self.binaries()
        if found is None:
            raise RuntimeError(f"{self.kind} server binaries ({self.needs}) not installed")
        self.bin = found
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"berth-{self.kind}-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.as_user: str | None = self.user if os.geteuid() == 0 else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._initialised = False
        _made.add(self)

    # -- what a subclass provides ----------------------------------------------------------

    def _init(self) -> None:
        raise NotImplementedError

    def _launch(self) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _crash(self) -> None:
        raise NotImplementedError

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        raise NotImplementedError

    def _answer(self) -> None:
        """One query; raises while the server does not answer."""
        raise NotImplementedError

    def _admin(self, statement: str) -> None:
        raise NotImplementedError

    # -- the life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (initialising its data the first time); wait until it answers."""
        if not self._initialised:
            self.dir.chmod(0o755)
            self._chown(self.dir)
            self._init()
            self._initialised = True
        _running.add(self)
        self._launch()
        self.wait_ready()

    def stop(self) -> None:
        """Shut the server down cleanly (clients' connections are closed)."""
        if self in _running:
            self._shutdown()
            _running.discard(self)

    def kill(self) -> None:
        """Crash the server: no shutdown; the next start recovers from its log."""
        if self in _running:
            self._crash()
            _running.discard(self)

    def restart(self) -> None:
        """Stop cleanly, then start again."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server (killing it if it will not stop) and remove its directory."""
        try:
            self.stop()
        except Exception:  # whatever happened, the server must not outlive us
            with contextlib.suppress(Exception):
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        _made.discard(self)

    def answers(self) -> bool:
        """Whether the server answers a query now."""
        try:
            self._answer()
        except Exception:  # any driver error: not (yet) answering
            return False
        return True

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Block until the server answers; the seconds waited."""
        started = time.monotonic()
        while not self.answers():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {self.tail()}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{self.kind} not answering after {timeout}s: {self.tail()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def create_database(self, name: str) -> str:
        """(Re)create an empty database ``name``; its URL."""
        self._admin(f"DROP DATABASE IF EXISTS {name}")
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def tail(self, chars: int = 2000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- helpers ------------------------------------------------------------------------------

    def _chown(self, path: Path) -> None:
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, argv: list[str], timeout: float = START_TIMEOUT) -> None:
        if self.as_user:
            argv = ["runuser", "-u", self.as_user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {out}")

    def __enter__(self) -> PrivateServer:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


class PrivatePostgres(PrivateServer):
    """PostgreSQL from ``initdb`` and ``pg_ctl``; user ``postgres``, trust authentication."""

    kind = "postgresql"
    user = "postgres"
    needs = "initdb, pg_ctl"
    binaries = staticmethod(_postgres_bin)

    def _init(self) -> None:
        self._run(
            [
                self.bin["initdb"],
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-instructions",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        # Small and quick to start; durability (fsync, synchronous_commit) as shipped.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "shared_buffers = 32MB\n"
                "max_connections = 100\n"
                "logging_collector = off\n"
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run([self.bin["pg_ctl"], "-D", str(self.data), *args])

    def _launch(self) -> None:
        # -W: pg_ctl returns at once; wait_ready polls with a real query.
        self._pg_ctl("-l", str(self.log), "-W", "start")

    def _shutdown(self) -> None:
        self._pg_ctl("-m", "fast", "-t", str(int(STOP_TIMEOUT)), "stop")

    def _crash(self) -> None:
        # "immediate": every process quits at once, no checkpoint: crash recovery at start.
        self._pg_ctl("-m", "immediate", "-t", str(int(STOP_TIMEOUT)), "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _connect(self, database: str = "postgres") -> object:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            connect_timeout=2,
            autocommit=True,
        )

    def _answer(self) -> None:
        with self._connect() as conn:  # type: ignore[attr-defined]
            conn.execute("SELECT 1")

    def _admin(self, statement: str) -> None:
        with self._connect() as conn:  # type: ignore[attr-defined]
            conn.execute(statement)


class PrivateMariaDB(PrivateServer):
    """MariaDB from ``mariadb-install-db`` and ``mariadbd``; ``root`` with an empty password."""

    kind = "mysql"
    user = "mysql"
    needs = "mariadbd, mariadb-install-db"
    binaries = staticmethod(_mariadb_bin)

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.socket = self.dir / "mysqld.sock"
        self.pid_file = self.dir / "mysqld.pid"
        self.tmp = self.dir / "tmp"

    def _options(self) -> list[str]:
        """What both mariadb-install-db's bootstrap server and ours are given: nothing
        shared with another server (the defaults' /tmp and socket are everybody's)."""
        return [
            "--no-defaults",
            f"--datadir={self.data}",
            f"--tmpdir={self.tmp}",
            f"--socket={self.socket}",
        ]

    def _init(self) -> None:
        for path in (self.data, self.tmp):
            path.mkdir()
            self._chown(path)
        self._run(
            [
                self.bin["mariadb-install-db"],
                *self._options(),
                *([f"--user={self.as_user}"] if self.as_user else []),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            timeout=120,
        )

    def _launch(self) -> None:
        argv = [
            self.bin["mariadbd"],
            *self._options(),
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=32M",
            "--max-connections=200",
        ]
        if self.as_user:
            # mariadbd switching users itself (--user) would clear the parent-death signal:
            # setpriv switches first, then sets it.
            argv = [*_as_user(self.as_user), "--pdeathsig=TERM", "--", *argv]
        # mariadbd runs in the foreground: our child, in its own session (no terminal
        # signals), stopped by the kernel should this process be killed.
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def _wait_exit(self) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _shutdown(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: a clean shutdown
            self._wait_exit()

    def _crash(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self._wait_exit()

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def _connect(self) -> object:
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", connect_timeout=2, autocommit=True
        )

    def _answer(self) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:  # type: ignore[attr-defined]
                cur.execute("SELECT 1")
        finally:
            conn.close()  # type: ignore[attr-defined]

    def _admin(self, statement: str) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:  # type: ignore[attr-defined]
                cur.execute(statement)
        finally:
            conn.close()  # type: ignore[attr-defined]


def _as_user(user: str) -> list[str]:
    """``setpriv`` arguments running a program as ``user`` (its groups too)."""
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]


SERVERS: dict[str, type[PrivateServer]] = {
    "postgresql": PrivatePostgres,
    "mysql": PrivateMariaDB,
}


@atexit.register
def _destroy_all() -> None:
    for server in list(_made):
        with contextlib.suppress(Exception):
            server.destroy()
