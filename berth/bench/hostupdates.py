"""``berth bench host-updates``: host updates per second with concurrent writers, for this
berth and an older checkout in the same run (issue 14, item 3: "no hotspot").

Before scheduler 1.3 every host write also bumped the one ``scheduler_revisions``
row, so concurrent writers queued behind that row's lock; from 1.3 a write adds
a row to the insert-only ``scheduler_state_changes`` log and shares no row with
other hosts' writes.  Each round gives each tree a fresh database on the
server of ``--database-url``, with ``--hosts`` hosts; ``--writers`` processes
(:mod:`berth.bench.host_writes`, importing the tree's own code) then write
metrics to their own hosts as fast as they can for ``--seconds``.  The trees
take turns, round after round, so both see the same machine; each tree's line
gives the median of its rounds.

This measures the database write itself, not the HTTP API: over HTTP the
server's CPU per request is the limit long before the row lock (docs/scale.md).
``--rtt-ms`` adds a network round trip before each statement and commit (a
sleep, no CPU), as with the database on another machine, which is when a lock
held across a transaction's round trips bounds every writer's rate.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import berth
from berth.bench import host_writes
from berth.bench.records import percentile

SCRIPT = Path(host_writes.__file__)


@dataclass(frozen=True)
class Tree:
    """A berth checkout whose code a round runs: a label, its folder, its commit."""

    label: str
    path: Path
    commit: str

    @classmethod
    def at(cls, label: str, path: Path) -> Tree:
        """The tree at ``path`` (ValueError when no ``berth`` package is there)."""
        path = path.resolve()
        if not (path / "berth" / "__init__.py").is_file():
            raise ValueError(f"{path} holds no berth package (berth/__init__.py)")
        found = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return cls(label, path, found.stdout.strip() if found.returncode == 0 else "")


def this_tree() -> Tree:
    """The berth this command runs (an editable install: its checkout)."""
    return Tree.at("this", Path(berth.__file__).parent.parent)


@dataclass(frozen=True)
class HostUpdatesPlan:
    """The workload of one run."""

    admin_url: str  # a PostgreSQL or MariaDB server on which databases can be created
    writers: int = 8
    hosts: int = 800
    seconds: float = 10.0
    rounds: int = 3

    def settings(self, rtt_ms: float) -> dict[str, Any]:
        """The line's ``settings``."""
        return {"writers": self.writers, "hosts": self.hosts, "seconds": self.seconds,
                "rounds": self.rounds, "rtt_ms": rtt_ms}  # fmt: skip


@dataclass
class Round:
    """What one round's writers did: each write's seconds, and the writes that lost every
    attempt to a concurrent one (the API's 409)."""

    latencies: list[float] = field(default_factory=list)
    gave_up: int = 0


def one_round(plan: HostUpdatesPlan, tree: Tree, rtt_ms: float) -> Round:
    """One round of ``tree``'s writers, in a fresh database."""
    name = f"berth_hostupdates_{uuid.uuid4().hex[:12]}"
    url = make_url(plan.admin_url).set(database=name).render_as_string(hide_password=False)
    _admin(plan.admin_url, f"CREATE DATABASE {name}")
    try:
        hosts = json.loads(_script(tree, "prepare", url, str(plan.hosts)))
        return _write(plan, tree, url, hosts, rtt_ms)
    finally:
        _admin(plan.admin_url, f"DROP DATABASE IF EXISTS {name}")


def _write(plan: HostUpdatesPlan, tree: Tree, url: str, hosts: list[str], rtt_ms: float) -> Round:
    """Start the writers, let them go at once when all are connected, gather latencies."""
    argv = [sys.executable, str(SCRIPT), str(tree.path), "write", url, str(plan.seconds)]
    argv.append(str(rtt_ms))
    procs = [
        subprocess.Popen(
            [*argv, *hosts[w :: plan.writers]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(plan.writers)
    ]
    try:
        for proc in procs:  # each imported its tree and connected
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a writer of {tree.path} did not start")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        done = Round()
        for proc in procs:
            out, _ = proc.communicate(timeout=plan.seconds + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"a writer of {tree.path} ended with status {proc.returncode}")
            found = json.loads(out)
            done.latencies += found["latencies"]
            done.gave_up += found["gave_up"]
        return done
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _script(tree: Tree, *args: str) -> str:
    """What :mod:`berth.bench.host_writes` printed, run with ``tree``'s code."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tree.path), *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{tree.path}: {' '.join(args[:1])} failed: {done.stderr[-2000:]}")
    return done.stdout


def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def summary(plan: HostUpdatesPlan, rounds: list[Round]) -> dict[str, Any]:
    """A tree's result: updates/s of each round, their median, the write latencies, and the
    writes that gave up."""
    rates = [round(len(r.latencies) / plan.seconds, 1) for r in rounds]
    every = sorted(s for r in rounds for s in r.latencies)
    return {
        "updates_per_s": round(statistics.median(rates), 1),
        "updates_per_s_rounds": rates,
        "writes": len(every),
        "gave_up": sum(r.gave_up for r in rounds),
        "p50_ms": round(percentile(every, 50) * 1000, 2) if every else None,
        "p99_ms": round(percentile(every, 99) * 1000, 2) if every else None,
    }


def run(
    plan: HostUpdatesPlan,
    trees: list[Tree],
    rtts_ms: list[float],
    done: Callable[[str], None] = lambda _: None,
) -> dict[tuple[str, float], dict[str, Any]]:
    """Every tree at every round trip, the trees taking turns round after round; the result
    of each (tree label, round trip).  ``done`` hears of each round as it ends."""
    seen: dict[tuple[str, float], list[Round]] = {}
    for n in range(plan.rounds):
        for rtt in rtts_ms:
            for tree in trees if n % 2 == 0 else trees[::-1]:
                began = time.monotonic()
                seen.setdefault((tree.label, rtt), []).append(one_round(plan, tree, rtt))
                done(f"round {n + 1} {tree.label} rtt {rtt:g} ms ({time.monotonic() - began:.0f}s)")
    return {key: summary(plan, rounds) for key, rounds in seen.items()}
