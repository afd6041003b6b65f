"""Stopping ``berth serve`` while clients write (issue 11, "clean shutdown").

SIGINT or SIGTERM, to the server's main process or to its whole process group
(as a terminal, systemd or Kubernetes sends it), after traffic and with eight
clients writing allocations: every process of the server is gone within 10
seconds, a new connection is refused, no write was answered 5xx, and every
write the server acknowledged is in the database (and every acknowledged
delete is not).

Four cases rather than every combination: each database, each server, each
signal and each target appears, and so does every pair of server, signal and
target (each server gets both signals and both targets; each signal goes to
both targets).  The database only has to keep what was acknowledged, which
the signal and its target do not change: each appears once (SQLite twice).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from conftest import server_database_url

from .helpers import (
    Writers,
    database_url,
    providers,
    serving,
    tree,
    wait_for_workers,
    wait_gone,
)

STOP_WITHIN_S = 10.0
CASES = [
    pytest.param(
        server, backend, signum, target,
        id=f"{server}-{backend}-{signum.name}-{target.split()[0]}",
    )
    for server, backend, signum, target in [
        ("granian", "sqlite", signal.SIGINT, "group"),
        ("granian", "postgresql", signal.SIGTERM, "main process"),
        ("gunicorn", "mysql", signal.SIGINT, "main process"),
        ("gunicorn", "sqlite", signal.SIGTERM, "group"),
    ]
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("server", "backend", "signum", "target"), CASES)
def test_a_stop_signal_ends_every_process_and_keeps_every_acknowledged_write(
    server: str, backend: str, signum: signal.Signals, target: str, tmp_path: Path
) -> None:
    url = database_url(server_database_url(backend), tmp_path)
    with serving(server, url, tmp_path) as running:
        rps = providers(running.url)
        with Writers(running.url, rps) as writers:
            writers.wait_for_writes(30)
            wait_for_workers(running.pid, 2)
            processes = tree(running.pid)
            assert len(processes) == (5 if server == "granian" else 4), processes
            if target == "group":
                os.killpg(running.pid, signum)
            else:
                os.kill(running.pid, signum)
            took = wait_gone(processes, STOP_WITHIN_S)
        with pytest.raises(httpx.ConnectError):
            httpx.get(running.url + "/", timeout=5)
    writers.check(url)
    print(
        f"{server} {backend}: {signum.name} to the {target}: all gone in {took:.2f}s; "
        f"answers {dict(writers.statuses)}, no answer {dict(writers.errors)}"
    )
