"""The one way the lab and the tests start a berth server, and stop it."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from berth.bench import launch

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
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
