"""``berth host report --simulate`` processes for a host-state run: started, ready, stopped.

The cloud's hosts are split among the processes by name prefix
(:func:`berth.bench.agents.prefixes`); each reports its hosts' ``compute``
namespace every interval.  A process is ready once it logs
``reporter.started`` (it has found its hosts and learnt their generations);
it is stopped with SIGTERM, after which it prints its stats as one JSON line
(:mod:`berth.reporter.stats`), and dies with the lab (a parent-death signal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from berth.bench.launch import die_with_parent

READY_TIMEOUT = 600.0  # 10,000 hosts listed and primed by processes sharing two cores
STOP_TIMEOUT = 30.0
READY = "reporter.started"


@dataclasses.dataclass(frozen=True)
class ReportPlan:
    """What every reporter process of a run is told."""

    url: str
    interval: float
    concurrency: int = 64  # sends in flight per process
    seed: int = 0


@dataclasses.dataclass
class ReporterProcess:
    """One running ``berth host report --simulate``."""

    prefix: str
    hosts: int
    proc: subprocess.Popen[bytes]
    out: Path  # its stdout: the stats line at exit
    err: Path  # its log
    final: dict[str, Any] = dataclasses.field(default_factory=dict)  # once stopped

    def ready(self) -> bool:
        """Whether it has started reporting (RuntimeError if it exited)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"reporter {self.prefix}* exited: {_tail(self.err)}")
        return READY in self.err.read_text(encoding="utf-8", errors="replace")


def command(plan: ReportPlan, prefix: str, hosts: int, index: int) -> list[str]:
    """The command line of the reporter of the ``hosts`` hosts named ``prefix``*."""
    return [sys.executable, "-m", "berth.cli", "host", "report", "--url", plan.url,
            "--simulate", str(hosts), "--prefix", prefix, "--interval", str(plan.interval),
            "--concurrency", str(plan.concurrency), "--seed", str(plan.seed + index)]  # fmt: skip


def _tail(path: Path) -> str:
    """The end of a reporter's log, for a failure's message."""
    return path.read_text(encoding="utf-8", errors="replace")[-2000:]


def _stop(reporter: ReporterProcess) -> None:
    """SIGTERM (it prints its stats and exits), SIGKILL after a timeout; its stats kept."""
    if reporter.proc.poll() is None:
        reporter.proc.send_signal(signal.SIGTERM)
    try:
        reporter.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        reporter.proc.kill()
        reporter.proc.wait()
    lines = reporter.out.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    with contextlib.suppress(IndexError, orjson.JSONDecodeError):
        reporter.final = dict(orjson.loads(lines[-1]))


def wait_ready(reporters: Sequence[ReporterProcess], timeout: float = READY_TIMEOUT) -> None:
    """Block until every reporter has started (RuntimeError if one exits or is late)."""
    deadline = time.monotonic() + timeout
    waiting = list(reporters)
    while waiting:
        waiting = [r for r in waiting if not r.ready()]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} reporter(s) not started within {timeout:.0f}s")
        time.sleep(0.2)


@contextlib.contextmanager
def running_reporters(plan: ReportPlan, groups: dict[str, int]) -> Iterator[list[ReporterProcess]]:
    """One reporter per name prefix of ``groups`` (prefix -> its host count), started;
    stopped after, whatever happens (their stats then in ``final``)."""
    env = {**os.environ, "BERTH_LOG_LEVEL": "INFO", "BERTH_LOG_JSON": "true"}
    with tempfile.TemporaryDirectory(prefix="berth-bench-reporters-") as tmp:
        reporters: list[ReporterProcess] = []
        try:
            for index, (prefix, hosts) in enumerate(groups.items()):
                out, err = Path(tmp, f"r{index}.out"), Path(tmp, f"r{index}.err")
                with out.open("wb") as o, err.open("wb") as e:
                    proc = subprocess.Popen(
                        command(plan, prefix, hosts, index), stdout=o, stderr=e, env=env,
                        preexec_fn=die_with_parent(),
                    )  # fmt: skip
                reporters.append(ReporterProcess(prefix, hosts, proc, out, err))
            wait_ready(reporters)
            yield reporters
        finally:
            for reporter in reporters:
                _stop(reporter)


def summed(reporters: Sequence[ReporterProcess]) -> dict[str, Any]:
    """The processes' stats together: hosts, sends accepted and failed, their rate, the
    worst p50/p99 of a send (ms), over each process's whole life."""
    finals = [r.final for r in reporters]
    found: dict[str, Any] = {
        name: sum(int(f.get(name) or 0) for f in finals) for name in ("hosts", "sent", "failed")
    }
    found["rate_per_s"] = round(sum(float(f.get("rate_per_s") or 0.0) for f in finals), 1)
    for name in ("p50_ms", "p99_ms"):
        values = [float(f[name]) for f in finals if f.get(name) is not None]
        found[name] = max(values) if values else None
    found["processes"] = len(reporters)
    found["stopped_without_stats"] = sum(not f for f in finals)
    return found
