"""SIGTERM to a ``berth`` command stops it and everything it started.

A benchmark starts a ``berth serve`` (and client processes) of its own; a
process manager, ``timeout`` or ``kill`` ending the command with SIGTERM must
not leave that server running with nobody to stop it (Python's default for
SIGTERM is to die without unwinding).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from server import ROOT

from berth.bench import procfs

from .helpers import tree, wait_gone


def _berth(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "berth.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the signal goes to the command alone, not to its group
    )


def _wait_for_server(pid: int, timeout: float = 60.0) -> list[int]:
    """The processes under ``pid`` once one of them is a server worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        below = procfs.descendants(pid)
        if any(b"granian_main" in _cmdline(p) for p in below):
            return below
        time.sleep(0.1)
    raise AssertionError("the benchmark never started its server")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_a_benchmark_stops_its_server(tmp_path: Path) -> None:
    env = dict(os.environ, BERTH_DATABASE_URL=f"sqlite:///{tmp_path / 'b.sqlite'}")
    populate = subprocess.run(
        [sys.executable, "-m", "berth.cli", "bench", "populate", "-n", "20",
         "--out", str(tmp_path / "r.jsonl")],
        cwd=ROOT, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert populate.returncode == 0, populate.stderr.decode()[-2000:]
    bench = _berth(
        "bench", "candidates", "--server-workers", "1", "--queries", "limit",
        "--requests", "100000", "--seconds", "120", "--out", str(tmp_path / "r.jsonl"),
        env=env,
    )  # fmt: skip
    everything = [bench.pid]
    try:
        started = _wait_for_server(bench.pid)
        everything = tree(bench.pid)
        assert set(started) <= set(everything)
        os.kill(bench.pid, signal.SIGTERM)
        assert bench.wait(timeout=30) == 128 + signal.SIGTERM
        wait_gone(everything, timeout=15)
    finally:  # what the command left behind, orphans included
        for pid in procfs.running(everything):
            os.kill(pid, signal.SIGKILL)
