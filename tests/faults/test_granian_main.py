"""``python -m berth.granian_main``: granian processes that never miss their stop signal.

Each case hangs plain granian 2.8 for good (``FAULT_GRANIAN_MODULE=granian``
runs them against it): two signals at once, taken by one of a worker's other
threads (a Ctrl-C to the group after traffic hung 2 stops in 3); a stop while
a worker loads its app, eaten by the handler it inherited from the master; a
worker's handler run three times during a request, which blocks on its
one-message shutdown channel.  Here every granian process is gone in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server import ROOT, free_port

from berth.bench import launch, procfs

from .helpers import tree, wait_gone

HERE = Path(__file__).resolve().parent
MODULE = os.environ.get("FAULT_GRANIAN_MODULE", "berth.granian_main")  # or plain "granian"


@contextlib.contextmanager
def granian(
    workers: int = 2, import_s: float = 0.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """(process, URL) of granian via berth.granian_main serving app.py, in a group of its own."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAULT_APP_IMPORT_S": str(import_s)}
    argv = [sys.executable, "-m", MODULE, "--interface", "wsgi"]
    argv += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen([*argv, "app:application"], cwd=HERE, env=env, start_new_session=True)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        launch.stop(proc, timeout=1)


def _traffic(url: str, requests: int = 20) -> None:
    launch.wait_ready(url, None, timeout=30)
    for _ in range(requests):
        with urllib.request.urlopen(url + "/", timeout=5) as answer:
            assert answer.status == 200


def test_a_ctrl_c_to_the_group_after_traffic_stops_every_process() -> None:
    for _ in range(3):
        with granian() as (proc, url):
            _traffic(url)
            processes = tree(proc.pid)
            os.killpg(proc.pid, signal.SIGINT)  # each worker: SIGINT, then the master's SIGTERM
            wait_gone(processes, 5)


def test_a_stop_while_a_worker_loads_the_app_stops_it() -> None:
    with granian(workers=1, import_s=5) as (proc, _):
        deadline = time.monotonic() + 10
        while not procfs.children(proc.pid):
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.02)
        time.sleep(0.3)  # the worker imports the app (5 s)
        processes = tree(proc.pid)
        proc.terminate()
        assert wait_gone(processes, 3) < 3


def test_a_worker_signalled_three_times_finishes_its_request_and_stops() -> None:
    with granian(workers=1) as (proc, url):
        _traffic(url)
        processes = tree(proc.pid)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(lambda: urllib.request.urlopen(url + "/slow", timeout=10).status)
            time.sleep(0.3)  # the request is in flight
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
                for worker in procfs.children(proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signum)
                time.sleep(0.1)  # each handled before the next
            assert slow.result() == 200
        proc.terminate()
        wait_gone(processes, 5)
