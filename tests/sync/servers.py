"""The sync backends' servers for tests: the machine's shared ones, and private ones to kill.

The shared servers (Redis 6379, NATS 4222, memcached 11211, PostgreSQL 5432)
serve everybody's tests: a test uses them on a channel of its own and never
stops them.  A fault test starts a :class:`PrivateServer` instead, on a
free loopback port, and kills and restarts it at will (on the same port, as
a restarted server would be).  It dies with the test process (a parent-death
signal) and its fixture stops it whatever happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from berth.bench.launch import die_with_parent, free_port

REQUIRE = os.environ.get("BERTH_TEST_REQUIRE_DATABASES") == "1"
SHARED = {
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
    "memcached": "127.0.0.1:11211",
}
SHARED_PORTS = {"redis": 6379, "nats": 4222, "memcached": 11211, "pg_notify": 5432}
BINARIES = {"redis": "redis-server", "nats": "nats-server", "memcached": "memcached"}
START_TIMEOUT = 20.0


def channel() -> str:
    """A channel no other test uses."""
    return f"berth_test_{uuid.uuid4().hex[:12]}"


def port_open(port: int) -> bool:
    """Whether something accepts connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def need(ok: bool, why: str) -> None:
    """Skip (fail, when the CI requires every server) unless ``ok``."""
    if not ok:
        if REQUIRE:
            pytest.fail(why)
        pytest.skip(why)


def need_shared(kind: str) -> None:
    """The shared server of ``kind`` must answer."""
    port = SHARED_PORTS[kind]
    need(port_open(port), f"no {kind} server on 127.0.0.1:{port}")


class PrivateServer:
    """A Redis, NATS (JetStream) or memcached server of one test module's own."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.port = free_port()
        self.monitor = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The backend URL of this server."""
        if self.kind == "redis":
            return f"redis://127.0.0.1:{self.port}/0"
        if self.kind == "nats":
            return f"nats://127.0.0.1:{self.port}"
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        port = str(self.port)
        if self.kind == "redis":
            return ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.directory)]  # fmt: skip
        if self.kind == "nats":
            return ["nats-server", "-a", "127.0.0.1", "-p", port, "-m", str(self.monitor),
                    "-js", "-sd", str(self.directory / "js")]  # fmt: skip
        # As root memcached wants a user; root itself keeps the parent-death signal.
        user = ["-u", "root"] if os.geteuid() == 0 else []
        return ["memcached", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "16", *user]

    def start(self) -> None:
        """Start it and wait until it serves."""
        binary = BINARIES[self.kind]
        need(shutil.which(binary) is not None, f"{binary} is not installed")
        self.proc = subprocess.Popen(
            self._command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),  # only prctl runs in the child
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"private {self.kind} did not start on port {self.port}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        if self.kind != "nats":
            return port_open(self.port)
        url = f"http://127.0.0.1:{self.monitor}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, with whatever it held in memory."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a few seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
