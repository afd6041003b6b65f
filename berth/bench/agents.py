"""``berth agent`` processes for a pull run: which hosts each runs, started, ready, stopped.

Each agent runs the placement-bench cloud's hosts whose name starts with its
``--hosts-from`` prefix.  The cloud's names (``r<row>-k<rack>-h<n>-<index>``,
:func:`berth.bench.cloud.build`) split into N disjoint sets of one prefix
each only for some N (:func:`prefixes`).  An agent is ready once its stats
line shows all its hosts and the run's queues served (it has read its hosts
and the queue bucket); it is stopped with SIGTERM (it finishes or naks what it holds) and
dies with the lab (a parent-death signal).
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

from berth.bench.launch import die_with_parent

READY_TIMEOUT = 600.0  # reading 10,000 hosts (three GETs each) takes a while on 2 cores
STOP_TIMEOUT = 30.0


def prefixes(names: Sequence[str], count: int) -> list[str]:
    """``count`` name prefixes that split ``names`` into disjoint, nearly equal sets.

    The shortest prefix length at which the names fall into exactly ``count``
    groups, each group's share within a factor of two of the others';
    ValueError naming the counts that would work when there is none.
    """
    possible = set()
    for length in range(1, max((len(n) for n in names), default=0) + 1):
        groups: dict[str, int] = {}
        for name in names:
            groups[name[:length]] = groups.get(name[:length], 0) + 1
        if len(groups) == count and max(groups.values()) <= 2 * min(groups.values()):
            return sorted(groups)
        possible.add(len(groups))
    raise ValueError(
        f"{len(names)} hosts do not split into {count} agents by name prefix; "
        f"try one of {sorted(possible)}"
    )


@dataclasses.dataclass
class AgentProcess:
    """One running ``berth agent``."""

    name: str
    prefix: str
    proc: subprocess.Popen[bytes]
    out: Path  # its stdout: the stats lines
    err: Path
    final: dict[str, int | str] = dataclasses.field(default_factory=dict)  # once stopped

    def stats(self) -> dict[str, int | str]:
        """Its last stats line as ``{counter: value}`` (empty before the first)."""
        lines = self.out.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        if not lines:
            return {}
        pairs = [part.split("=", 1) for part in lines[-1].split() if "=" in part]
        return {k: int(v) if v.isdigit() else v for k, v in pairs}

    def ready(self, hosts: int, queues: int) -> bool:
        """Its stats show all of its ``hosts``, and at least ``queues`` queues served."""
        found = self.stats()
        served = str(found.get("queues", "0/0")).partition("/")[0]
        return found.get("hosts") == hosts and served.isdigit() and int(served) >= queues


def _command(url: str, nats_url: str, name: str, prefix: str, choice: str) -> list[str]:
    """The agent's command line: boot time 0, a stats line every second."""
    return [sys.executable, "-m", "berth.cli", "agent", "--url", url, "--nats-url", nats_url,
            "--name", name, "--hosts-from", prefix, "--choice", choice, "--boot-seconds", "0",
            "--stats-every", "1"]  # fmt: skip


def _stop(agent: AgentProcess) -> None:
    """SIGTERM (it naks what it holds, prints its last stats line and exits), SIGKILL after
    a timeout; its last counters are kept in ``agent.final``."""
    if agent.proc.poll() is None:
        agent.proc.send_signal(signal.SIGTERM)
    try:
        agent.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        agent.proc.kill()
        agent.proc.wait()
    agent.final = agent.stats()


def _tail(agent: AgentProcess) -> str:
    """The end of the agent's standard error, for a failure's message."""
    return agent.err.read_text(encoding="utf-8", errors="replace")[-2000:]


def wait_ready(agents: Sequence[AgentProcess], sizes: Sequence[int], queues: int) -> None:
    """Block until every agent is ready (RuntimeError if one exits or none gets there)."""
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(zip(agents, sizes, strict=True))
    while waiting:
        for agent, _ in waiting:
            if agent.proc.poll() is not None:
                raise RuntimeError(f"agent {agent.name} exited: {_tail(agent)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"agents not ready within {READY_TIMEOUT:.0f}s")
        waiting = [(a, n) for a, n in waiting if not a.ready(n, queues)]
        time.sleep(0.2)


@contextlib.contextmanager
def running_agents(
    url: str, nats_url: str, groups: dict[str, int], queues: int, choice: str = "pack"
) -> Iterator[list[AgentProcess]]:
    """One agent per name prefix of ``groups`` (prefix -> its host count), ready (serving at
    least ``queues`` queues); stopped after, whatever happens."""
    env = {**os.environ, "BERTH_LOG_LEVEL": "WARNING", "BERTH_LOG_JSON": "false"}
    with tempfile.TemporaryDirectory(prefix="berth-bench-agents-") as tmp:
        agents: list[AgentProcess] = []
        try:
            for n, prefix in enumerate(groups):
                name = f"bench-{n}"
                out, err = Path(tmp, f"{name}.out"), Path(tmp, f"{name}.err")
                with out.open("wb") as o, err.open("wb") as e:
                    proc = subprocess.Popen(
                        _command(url, nats_url, name, prefix, choice), stdout=o, stderr=e,
                        env=env, preexec_fn=die_with_parent(),
                    )  # fmt: skip
                agents.append(AgentProcess(name, prefix, proc, out, err))
            wait_ready(agents, list(groups.values()), queues)
            yield agents
        finally:
            for agent in agents:
                _stop(agent)
