"""berth.server.Supervisor, the parent ``berth serve`` stays, with stand-in children.

Each child is a few lines of Python that notes in a file when it starts and
when SIGTERM reaches it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from server import ROOT, free_port

from berth.bench import procfs
from berth.server import port_taken

from .helpers import wait_gone

STOPS = "import signal, sys; signal.signal(signal.SIGTERM, lambda *_: (note('term'), sys.exit(0)))"
STUBBORN = "import signal; signal.signal(signal.SIGTERM, lambda *_: note('term'))"


def child(log: Path, body: str = "", then: str = "time.sleep(60)") -> list[str]:
    """A child that notes 'start' (and what ``body`` notes) in ``log``, then runs ``then``."""
    code = (
        "import os, time\n"
        f"def note(what): open({str(log)!r}, 'a').write(f'{{what}} {{os.getpid()}}\\n')\n"
        f"{body}\nnote('start')\n{then}\n"
    )
    return [sys.executable, "-c", code]


def supervise(argvs: list[list[str]], grace: float) -> subprocess.Popen[bytes]:
    """A Supervisor of ``argvs`` in a process (and group) of its own."""
    run = f"Supervisor({argvs!r}, {grace}).run()"
    code = f"import sys; from berth.server import Supervisor; sys.exit({run})"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)


def notes(log: Path, what: str, count: int = 1, timeout: float = 15.0) -> list[int]:
    """The pids that noted ``what``, once at least ``count`` did."""
    deadline = time.monotonic() + timeout
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        pids = [int(line.split()[1]) for line in lines if line.split()[0] == what]
        if len(pids) >= count:
            return pids
        assert time.monotonic() < deadline, f"{len(pids)} of {count} '{what}' in {lines}"
        time.sleep(0.02)


def test_a_child_that_ends_is_started_again_later_each_time_it_ends_quickly(tmp_path: Path) -> None:
    log, steady = tmp_path / "log", tmp_path / "steady"
    sup = supervise([child(log, then="time.sleep(0.1)"), child(steady)], grace=5)
    try:
        notes(log, "start", 4)
        assert sup.poll() is None
    finally:
        sup.terminate()
        assert sup.wait(10) == 0
    assert 4 <= len(notes(log, "start")) <= 6  # at once, then 0.5 s, 1 s, 2 s later
    assert len(notes(steady, "start")) == 1


def test_a_port_another_server_listens_on_is_found_before_starting() -> None:
    assert port_taken("127.0.0.1", free_port()) is None
    with socket.create_server(("127.0.0.1", 0)) as other:
        assert "in use" in (port_taken("127.0.0.1", other.getsockname()[1]) or "")


def test_a_signal_to_the_group_reaches_each_child_once_as_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "log"
    sup = supervise([child(log, STOPS), child(log, STOPS)], grace=5)
    pids = notes(log, "start", 2)
    os.killpg(sup.pid, signal.SIGINT)  # the children have groups of their own
    assert sup.wait(10) == 0
    assert sorted(notes(log, "term", 2)) == sorted(pids)  # once each
    assert procfs.running(pids) == []


def test_what_outlives_the_grace_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    sup = supervise([child(log, STUBBORN)], grace=1)
    pids = notes(log, "start")
    started = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(10) == 1
    assert 1 <= time.monotonic() - started < 3
    assert notes(log, "term") == pids
    wait_gone(pids, 2)


def test_a_second_signal_kills_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    sup = supervise([child(log, STUBBORN)], grace=60)
    pids = notes(log, "start")
    sup.send_signal(signal.SIGTERM)
    notes(log, "term")
    started = time.monotonic()
    sup.send_signal(signal.SIGINT)
    assert sup.wait(10) == 1
    assert time.monotonic() - started < 2
    wait_gone(pids, 2)


def test_what_an_ended_child_leaves_behind_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    orphan = child(log, body="note('orphan')")
    waits = f"while 'orphan' not in open({str(log)!r}).read(): time.sleep(0.01)"
    spawner = child(log, then=f"import subprocess; subprocess.Popen({orphan!r})\n{waits}")
    sup = supervise([spawner], grace=5)
    try:
        wait_gone(notes(log, "orphan"), 5)  # killed with the group of the child that ended
    finally:
        sup.kill()
        sup.wait()


def test_children_get_sigterm_when_the_supervisor_dies(tmp_path: Path) -> None:
    log = tmp_path / "log"
    sup = supervise([child(log, STOPS)], grace=5)
    pids = notes(log, "start")
    sup.kill()
    sup.wait()
    assert notes(log, "term") == pids
    wait_gone(pids, 5)
