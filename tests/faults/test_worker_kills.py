"""SIGKILL of workers while clients write (issue 11, "worker kills").

Workers are killed the way an OOM kill does, while sixteen clients write
allocations: the server stays up and replaces every worker, no write is
answered 5xx, every acknowledged write is in the database and no provider is
over capacity.  The only thing clients see is a dropped connection for what a
killed worker had in flight (and, under granian, a refused one while no
worker of the port is up: each granian worker has its own listening socket).

The first two kills hit one worker and then its replacement, as soon as it
is up: granian itself ends the whole server then ("Worker crash loop
detected"); ``berth serve`` must not.  Then a random worker every
``BERTH_TEST_KILL_INTERVAL`` seconds (default 1.5) until
``BERTH_TEST_KILL_SECONDS`` (default 4.5) have passed.  The issue's longer run,
a kill every 5 s for 60 s::

    BERTH_TEST_KILL_SECONDS=60 BERTH_TEST_KILL_INTERVAL=5 \\
        python -m pytest tests/faults/test_worker_kills.py

Three cases, not every server on every database: each database once and each
server at least once (granian on SQLite and MariaDB, gunicorn on PostgreSQL).
Replacing a killed worker is the server's (and ``berth serve``'s) business,
keeping what was acknowledged the database's; no pairing of the two behaves
otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import BACKENDS, server_database_url

from berth.bench import procfs

from .helpers import Writers, database_url, providers, serving, wait_for_workers, workers

KILL_INTERVAL_S = float(os.environ.get("BERTH_TEST_KILL_INTERVAL", "1.5"))
KILL_SECONDS = float(os.environ.get("BERTH_TEST_KILL_SECONDS", "4.5"))
WORKERS = 2
CLIENTS = 16  # as in the report


def _newcomer(pid: int, before: list[int], timeout: float = 30.0) -> int:
    """The first worker of ``pid`` that is not one of ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(workers(pid)) - set(before)
        if new:
            return new.pop()
        time.sleep(0.02)
    raise AssertionError("no worker replaced the killed one")


def _kill(pids: list[int], rng: random.Random, killed: list[int]) -> None:
    """SIGKILL to one of ``pids`` (none if the list is empty)."""
    if pids:
        with contextlib.suppress(ProcessLookupError):  # it died on its own meanwhile
            killed.append(rng.choice(pids))
            os.kill(killed[-1], signal.SIGKILL)


# (server, database): each database once, each server at least once.
CASES = [("granian", "sqlite"), ("gunicorn", "postgresql"), ("granian", "mysql")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "backend"),
    [pytest.param(s, b, id=f"{b}-{s}") for s, b in CASES if b in BACKENDS],
)
def test_killed_workers_are_replaced_and_acknowledged_writes_kept(
    server: str, backend: str, tmp_path: Path
) -> None:
    url = database_url(server_database_url(backend), tmp_path)
    rng = random.Random(11)
    killed: list[int] = []
    with serving(server, url, tmp_path, WORKERS) as running:
        rps = providers(running.url)
        with Writers(running.url, rps, CLIENTS) as writers:
            writers.wait_for_writes(20)
            wait_for_workers(running.pid, WORKERS)
            started = time.monotonic()
            before = workers(running.pid)
            _kill(before, rng, killed)
            _kill([_newcomer(running.pid, before)], rng, killed)  # its replacement, at once
            while time.monotonic() - started < KILL_SECONDS:
                time.sleep(KILL_INTERVAL_S)
                assert procfs.running([running.pid]), "berth serve exited"
                _kill(workers(running.pid), rng, killed)
            wait_for_workers(running.pid, WORKERS, besides=killed)
            writers.wait_for_writes(len(writers.acked) + 20)  # they are served again
        assert procfs.running([running.pid]), "berth serve exited"
        assert httpx.get(running.url + "/", timeout=10).status_code == 200
    writers.check(url)
    print(
        f"{server} {backend}: {len(killed)} workers killed in {KILL_SECONDS:.0f}s; "
        f"answers {dict(writers.statuses)}, no answer {dict(writers.errors)}"
    )
