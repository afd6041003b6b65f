"""What the fault tests share: clients writing allocations over HTTP while a server is
stopped or its workers are killed, the check that every acknowledged write is in
the database, and the processes of a running ``berth serve``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
from server import ROOT
from sqlalchemy import select

from berth.bench import launch, procfs
from berth.bench.cloud import ProviderSpec
from berth.bench.cloud_api import through_api
from berth.bench.invariants import over_capacity_sql
from berth.bench.transport import HEADERS, HttpTransport
from berth.db import tables as t
from berth.db.engine import Database

PROVIDERS = 4
VCPU = 24  # per provider, with 2 reserved and an allocation ratio of 2: room for 44 VCPU
# (total, reserved, min_unit, max_unit, step_size, allocation_ratio)
INVENTORIES = {"VCPU": (VCPU, 2, 1, VCPU, 1, 2.0), "MEMORY_MB": (8192, 0, 1, 8192, 1, 1.0)}


def providers(url: str) -> list[str]:
    """A few providers, small enough that the writers fill them and meet 409s."""
    specs = [
        ProviderSpec(uuid=str(uuid.uuid4()), name=f"fault-rp{i}", inventories=dict(INVENTORIES))
        for i in range(PROVIDERS)
    ]
    through_api(HttpTransport(url), specs)
    return [spec.uuid for spec in specs]


@contextlib.contextmanager
def serving(server: str, url: str, tmp_path: Path, workers: int = 2) -> Iterator[launch.Server]:
    """``berth serve`` with ``server`` over ``url``; the end of its log if the block fails."""
    log = tmp_path / "server.log"
    env = {"BERTH_SERVER": server, "BERTH_LOG_REQUESTS": "false"}
    with launch.serve(url, workers, env=env, log_path=str(log), cwd=ROOT) as running:
        try:
            yield running
        except BaseException:
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise


def database_url(backend_url: str | None, tmp_path: Path) -> str:
    """The server's database URL: the backend's, or a SQLite file the test can read too."""
    return backend_url or f"sqlite:///{tmp_path / 'berth.sqlite'}"


class Writers:
    """Clients writing allocations (PUT, and DELETE of their own) until stopped.

    ``acked[consumer]`` is what the server acknowledged last: True for a PUT
    answered 204 (the allocations must be in the database), False for a
    DELETE answered 204 (they must not).  A request that got no answer (the
    connection dropped or was refused) makes its consumer ``unknown``: it
    may or may not have been written.
    """

    def __init__(self, url: str, rps: list[str], clients: int = 8) -> None:
        self.url, self.rps = url, rps
        self.acked: dict[str, bool] = {}
        self.unknown: set[str] = set()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self._write, args=(seed,), daemon=True)
            for seed in range(clients)
        ]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Let each client finish its request and stop."""
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def wait_for_writes(self, count: int, timeout: float = 60.0) -> None:
        """Block until ``count`` writes were acknowledged."""
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} writes acknowledged"
            time.sleep(0.05)

    def _write(self, seed: int) -> None:
        rng = random.Random(seed)
        mine: list[str] = []
        with httpx.Client(base_url=self.url, headers=HEADERS, timeout=30) as http:
            while not self.done.is_set():
                if mine and rng.random() < 0.3:
                    consumer = mine.pop(rng.randrange(len(mine)))
                    self._send(http, consumer, "DELETE", None)
                    continue
                consumer = str(uuid.uuid4())
                body = {
                    "allocations": {
                        rng.choice(self.rps): {
                            "resources": {"VCPU": rng.randint(1, 4), "MEMORY_MB": 64}
                        }
                    },
                    "project_id": "p",
                    "user_id": "u",
                    "consumer_generation": None,
                    "consumer_type": "INSTANCE",
                }
                if self._send(http, consumer, "PUT", body):
                    mine.append(consumer)

    def _send(self, http: httpx.Client, consumer: str, method: str, body: object) -> bool:
        """One request about ``consumer``; True if the server acknowledged it."""
        try:
            answer = http.request(method, f"/allocations/{consumer}", json=body)
        except httpx.TransportError as exc:
            with self.lock:
                self.errors[type(exc).__name__] += 1
                self.unknown.add(consumer)
            time.sleep(0.05)  # as a client would before trying again
            return False
        with self.lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code == 204:
                self.acked[consumer] = method == "PUT"
        return answer.status_code == 204

    def check(self, url: str) -> None:
        """No 5xx; every acknowledged write as acknowledged; no provider over capacity."""
        assert not [s for s in self.statuses if s >= 500], self.statuses
        assert set(self.statuses) <= {204, 409}, self.statuses
        db = Database(url)
        try:
            with db.read() as conn:
                present = set(conn.scalars(select(t.allocations.c.consumer_id).distinct()))
        finally:
            db.dispose()
        known = {c: put for c, put in self.acked.items() if c not in self.unknown}
        lost = [c for c, put in known.items() if put and c not in present]
        revived = [c for c, put in known.items() if not put and c in present]
        assert (lost, revived) == ([], []), "acknowledged writes not in the database"
        assert over_capacity_sql(url) == []


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    return [pid, *procfs.descendants(pid)]


def workers(pid: int) -> list[int]:
    """The running worker processes of the ``berth serve`` whose pid is ``pid``."""
    return sorted(procfs.running(list(set(procfs.workers(pid)) - set(procfs.children(pid)))))


def wait_for_workers(
    pid: int, count: int, besides: Sequence[int] = (), timeout: float = 30.0
) -> None:
    """Block until ``pid`` has ``count`` running workers that are not ``besides``."""
    deadline = time.monotonic() + timeout
    while len(set(workers(pid)) - set(besides)) < count:
        assert time.monotonic() < deadline, f"workers now: {workers(pid)}, not {besides}"
        time.sleep(0.05)


KILLED_IN_IO_S = 30.0


def wait_gone(pids: list[int], timeout: float) -> float:
    """Seconds until none of ``pids`` runs (AssertionError naming the rest after ``timeout``)."""
    started = time.monotonic()
    while left := procfs.running(pids):
        waited = time.monotonic() - started
        # A process already sent SIGKILL ends when the kernel lets it: one in uninterruptible
        # I/O (a commit's fsync on a congested disk) first finishes that.  Nothing here
        # could stop it sooner, so it has KILLED_IN_IO_S more, not forever.
        grace = KILLED_IN_IO_S if all(procfs.killed(pid) for pid in left) else 0.0
        if waited >= timeout + grace:
            raise AssertionError(f"still running after {waited:.1f}s: {describe(left)}")
        time.sleep(0.02)
    return time.monotonic() - started


def describe(pids: list[int]) -> str:
    """What each of ``pids`` is and where it waits: command line, state, kernel wait channel,
    and its Python threads' stacks when py-spy is installed (the report of a stuck stop)."""
    parts = []
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        try:
            argv = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
            state = proc.joinpath("stat").read_text().rpartition(")")[2].split()[0]
            wchan = proc.joinpath("wchan").read_text()
        except OSError as exc:
            parts.append(f"{pid}: {exc}")
            continue
        stacks = ""
        spy = shutil.which("py-spy", path=os.path.dirname(sys.executable))
        if spy:
            dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
            stacks = "\n" + (dump.stdout or dump.stderr)[-3000:]
        parts.append(f"{pid} [{state} in {wchan}] {argv}{stacks}")
    return "\n".join(parts)
