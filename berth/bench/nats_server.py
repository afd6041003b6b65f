"""A private ``nats-server`` with JetStream for one pull run: started, measured, stopped.

Each pull run gets its own server on free ports, its store in a temporary
directory, and its monitoring port on (``-m``), so that the streams,
consumers and queue bucket are the run's alone (the server's stream names
are fixed: ``BERTH_WORK``, ``BERTH_DELETE``, ``berth-queues``) and its
memory can be read from ``/varz``.  It dies with the lab (a parent-death
signal), and :func:`private_nats` stops it on the way out whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from berth.bench.launch import die_with_parent, free_port
from berth.bench.procfs import rss_mb

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
STOP_TIMEOUT = 10.0


class NatsUnavailable(RuntimeError):
    """No nats-server binary, or it did not come up with JetStream."""


@dataclass(frozen=True)
class NatsProcess:
    """A running private nats-server."""

    url: str  # nats://127.0.0.1:<port>
    monitor: str  # http://127.0.0.1:<monitoring port>
    pid: int

    def varz(self) -> dict[str, object]:
        """The server's ``/varz`` (its memory is ``mem``, bytes)."""
        with urllib.request.urlopen(self.monitor + "/varz", timeout=5) as answer:
            return dict(json.loads(answer.read()))

    def memory_mb(self) -> float:
        """Resident memory in MB, as ``/varz`` reports it (the process's RSS if it cannot)."""
        try:
            return round(float(str(self.varz()["mem"])) / (1024 * 1024), 1)
        except (OSError, KeyError, ValueError):
            return round(rss_mb(self.pid), 1)


def _healthy(monitor: str) -> bool:
    """Whether the server answers ``/healthz`` with JetStream ready."""
    try:
        with urllib.request.urlopen(monitor + "/healthz?js-enabled-only=true", timeout=1) as got:
            return bool(got.status == 200)
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a timeout."""
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def private_nats(timeout: float = 30.0) -> Iterator[NatsProcess]:
    """Start a nats-server with JetStream on free ports; stop it and remove its store after."""
    if not Path(NATS_SERVER).exists():
        raise NatsUnavailable(f"no nats-server at {NATS_SERVER} (pull dispatch needs one)")
    port, monitor_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="berth-bench-nats-") as store:
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor_port),
                   "-js", "-sd", store]  # fmt: skip
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),  # only prctl runs in the child
        )
        try:
            monitor = f"http://127.0.0.1:{monitor_port}"
            deadline = time.monotonic() + timeout
            while not _healthy(monitor):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise NatsUnavailable(f"nats-server did not come up on port {port}")
                time.sleep(0.05)
            yield NatsProcess(f"nats://127.0.0.1:{port}", monitor, proc.pid)
        finally:
            _stop(proc)
