"""Fixtures for pull dispatch: a private NATS server per test, a client, a small cloud.

Each test module gets its own ``nats-server`` with JetStream (a free port, a
store in the module's tmp dir), emptied before each test (every stream deleted,
and with them their consumers and the queue bucket), so that streams,
consumers and the queue bucket are the test's alone (the machine's shared
server on 4222 serves other sessions, whose queue syncs would remove this
one's consumers).  It is stopped at the end of the module, also when the run
is interrupted.  Tests that start the server themselves get one of their own
(``stopped_nats``).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import nats
import pytest

from berth.bench.launch import die_with_parent
from berth.db.engine import Database
from tests.helpers import in_process_client
from tests.pull.helpers import check_invariants

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """A nats-server process with JetStream on ``port``, its store under ``store``."""

    def __init__(self, port: int, store: Path) -> None:
        self.port, self.store = port, store
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        if not Path(NATS_SERVER).exists():
            pytest.skip(f"no nats-server at {NATS_SERVER}")
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        command += ["-sd", str(self.store)]
        command += ["-l", str(self.log)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),  # gone with a killed test worker
        )
        deadline = time.monotonic() + 60  # a loaded machine starts it slowly
        while time.monotonic() < deadline and self.process.poll() is None:
            if self._jetstream_answers():
                return
            time.sleep(0.1)
        self.stop()
        log = self.log.read_text()[-2000:] if self.log.exists() else "(no log)"
        pytest.fail(f"nats-server with JetStream did not start on {self.port}:\n{log}")

    @property
    def log(self) -> Path:
        """Its log file (beside its store)."""
        return self.store.parent / f"nats-{self.port}.log"

    def _jetstream_answers(self) -> bool:
        """The port accepts and JetStream answers (it is ready a moment after the port)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
        except OSError:
            return False

        async def ask() -> bool:
            nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=1)
            try:
                await nc.jetstream(timeout=2).account_info()
                return True
            finally:
                await nc.close()

        try:
            return asyncio.run(ask())
        except Exception:  # not ready yet
            return False

    def empty(self) -> None:
        """Delete every stream (their consumers and key-value buckets go with them)."""

        async def wipe() -> None:
            nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=1)
            try:
                js = nc.jetstream(timeout=5)
                for info in await js.streams_info():
                    await js.delete_stream(info.config.name)
            finally:
                await nc.close()

        asyncio.run(wipe())

    def running(self) -> bool:
        """Started and not exited."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@pytest.fixture(scope="module")
def module_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """The module's private NATS server, started (tests take it through ``nats_server``)."""
    server = NatsServer(free_port(), tmp_path_factory.mktemp("nats") / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(module_nats: NatsServer) -> NatsServer:
    """A private NATS server, started and empty (no stream, consumer or bucket)."""
    if not module_nats.running():  # it died: a fresh one on the same port
        module_nats.stop()
        module_nats.start()
    module_nats.empty()
    return module_nats


@pytest.fixture
def stopped_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A private NATS server not started yet (its port is closed until the test starts it)."""
    server = NatsServer(free_port(), tmp_path / "jetstream")
    try:
        yield server
    finally:
        server.stop()


MakeClient = Callable[..., falcon.testing.TestClient]


@pytest.fixture
def make_client(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """In-process clients of berth over ``db`` (closed after); the invariants checked last."""
    opened: list[Any] = []

    def make(nats_url: str, **settings: Any) -> falcon.testing.TestClient:
        manager = in_process_client(
            db, monkeypatch, log_requests=False, nats_url=nats_url, nats_retry_s=0, **settings
        )
        opened.append(manager)
        return manager.__enter__()

    yield make
    for manager in reversed(opened):
        manager.__exit__(None, None, None)
    check_invariants(db)
