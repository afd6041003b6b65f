"""The one way the lab and the tests start a berth server, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from berth.bench import launch, procfs
from tests.helpers import wait_for

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)
# A process that serves and then waits: the test kills it with the server up.
SERVING_PARENT = (
    "import time; from berth.bench import launch\n"
    "with launch.serve(workers=1) as server:\n"
    "    print(server.pid, flush=True); time.sleep(600)"
)


def test_a_server_answers_in_its_own_process_group_and_is_gone_after(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with launch.serve(workers=1, log_path=str(log)) as server:
        with urllib.request.urlopen(server.url + "/", timeout=10) as answer:
            assert answer.status == 200
        assert os.getpgid(server.pid) == server.pid  # it leads a group of its own
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)
    assert log.exists()


def test_stop_kills_the_group_when_sigterm_is_ignored() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    launch.stop(proc, timeout=0.5)
    proc.stdout.close()
    assert proc.returncode == -9


def test_a_server_that_dies_is_reported_with_its_log(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="exited"), launch.serve("nosuchdb://x", workers=1):
        pass
    assert capsys.readouterr().err


def test_the_server_goes_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    """A test worker killed mid-test (SIGKILL: no cleanup of its own) leaves no server."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the data directory it cannot remove
    parent = subprocess.Popen(
        [sys.executable, "-c", SERVING_PARENT], stdout=subprocess.PIPE, env=env
    )
    tree: list[int] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the server did not come up (exit {parent.poll()})"
        tree = [int(line), *procfs.descendants(int(line))]
        assert len(procfs.running(tree)) > 1  # berth serve and its server process(es)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not procfs.running(tree), 30, f"{procfs.running(tree)} to stop")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in procfs.running(tree):  # the test failed: nothing may stay behind
            os.kill(pid, signal.SIGKILL)
        if parent.stdout is not None:
            parent.stdout.close()
