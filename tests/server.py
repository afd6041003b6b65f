"""Start a real berth server (gunicorn, several workers) for HTTP-level tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Block until ``GET url/`` answers, or fail if the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"berth exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"berth did not answer at {url} within {timeout}s")


@contextlib.contextmanager
def running_berth(
    database_url: str | None = None,
    workers: int = 2,
    env: dict[str, str] | None = None,
    log_path: str | None = None,
) -> Iterator[str]:
    """Run ``berth serve`` on a free port; yield its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="berth-test-") as tmp:
        full_env = dict(os.environ)
        full_env.update(
            {
                "BERTH_DATA_DIR": tmp,
                "BERTH_DATABASE_URL": database_url or f"sqlite:///{tmp}/berth.sqlite",
                "BERTH_BIND": f"127.0.0.1:{port}",
                "BERTH_WORKERS": str(workers),
                "BERTH_LOG_LEVEL": "WARNING",
            }
        )
        full_env.update(env or {})
        log = open(log_path or os.path.join(tmp, "server.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "berth.cli", "serve"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
