"""Which multi-host runs exist, who owns them, and tearing one down (even after a crash).

Each run has a directory ``/run/berth-multihost/bmh<slot>`` holding its
owner (the process that made it, with its start time, so a reused pid does
not count), the process groups it started (``pids``), its configs and logs.
Slots are handed out under a file lock, skipping any a directory or a
namespace still uses, so runs made at the same moment (test workers in
parallel) never share a name or an address.  :func:`teardown` stops a run
from its files alone: SIGTERM to each process group it started (only those
whose environment names the run), SIGKILL after a grace, then SIGKILL to
whatever is left in its namespaces, which it deletes with their links.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
from pathlib import Path

from berth.bench import netns

# One place for every run on the machine, whatever TMPDIR says: a namespace whose run
# has no directory here counts as left behind (namespaces are machine-wide too).
ROOT = Path("/run/berth-multihost")
RUN_VARIABLE = "BERTH_MULTIHOST_RUN"  # in the environment of every process a run starts
STOP_GRACE = 15.0  # seconds from SIGTERM to SIGKILL (berth serve's own grace is 8 s)


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def allocate(root: Path = ROOT) -> netns.Plan:
    """A free slot, its run directory made and owned by this process."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = {p.name for p in root.iterdir() if p.is_dir()} | netns.runs_present()
        for slot in netns.SLOTS:
            plan = netns.Plan(slot)
            if plan.run not in taken:
                break
        else:
            raise RuntimeError("every slot is taken: run `python -m berth.bench.multihost down`")
        directory = root / plan.run
        directory.mkdir()
        owner = {"pid": os.getpid(), "started": _started(os.getpid())}
        (directory / "owner.json").write_text(json.dumps(owner))
    return plan


def record_pid(plan: netns.Plan, pid: int, root: Path = ROOT) -> None:
    """Remember a process group the run started (for a teardown from another process)."""
    with open(root / plan.run / "pids", "a") as out:
        out.write(f"{pid}\n")


def owner_alive(run: str, root: Path = ROOT) -> bool:
    """Whether the process that made ``run`` still runs."""
    try:
        owner = json.loads((root / run / "owner.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(_started(int(owner["pid"])) == owner["started"])


def runs(root: Path = ROOT) -> set[str]:
    """Every run with a directory, a namespace or a link on this machine."""
    found = {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()
    return found | netns.runs_present()


def _ours(pid: int, run: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{RUN_VARIABLE}={run}".encode() in environ


def signal_group(pid: int, sig: int) -> None:
    """``sig`` to process group ``pid`` (gone already: nothing)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _stop_groups(pids: list[int], grace: float) -> None:
    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_started(p) is not None for p in pids):
        time.sleep(0.1)
    for pid in pids:
        signal_group(pid, signal.SIGKILL)


def teardown(run: str, root: Path = ROOT, grace: float = STOP_GRACE) -> None:
    """Stop everything ``run`` started, delete its namespaces and links and its directory."""
    directory = root / run
    try:
        listed = [int(p) for p in (directory / "pids").read_text().split()]
    except OSError:
        listed = []
    _stop_groups([p for p in listed if _ours(p, run)], grace)
    netns.remove_run(run)
    shutil.rmtree(directory, ignore_errors=True)


def teardown_stale(root: Path = ROOT, everything: bool = False) -> list[str]:
    """Tear down the runs whose owner is gone (all of them with ``everything``); their names."""
    gone = sorted(r for r in runs(root) if everything or not owner_alive(r, root))
    for run in gone:
        teardown(run, root)
    return gone
