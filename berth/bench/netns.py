"""Network namespaces with two veth links each: the plumbing of :mod:`berth.bench.multihost`.

A run is named ``bmh<slot>``; its host *i* is the namespace ``bmh<slot>-<i>``
with two links, each a veth pair with a /30 of ``10.77.<slot>.0/24``:

``api``  clients and the load balancer reach the host here
         (root side ``.8i+1``, the host ``.8i+2``);
``db``   the host reaches its database here, through a forwarder that
         listens on the root side (``.8i+5``; the host is ``.8i+6``).

Taking ``db`` down inside the namespace cuts the host off from its database
while clients still reach it (:func:`set_db_link`).  Every name starts with
the run's, so whatever a crashed run left behind is found and removed by
prefix (:func:`remove_run`).  Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass

PREFIX = "bmh"
MAX_HOSTS = 31  # /30s of one /24, two per host
SLOTS = range(1, 251)
_RUN_NAME = re.compile(rf"^({PREFIX}\d+)(?:-\d+|h\d+[ad])?$")


class NetnsError(RuntimeError):
    """An ``ip`` command failed."""


@dataclass(frozen=True)
class Plan:
    """Names and addresses of one run's namespaces and links."""

    slot: int

    @property
    def run(self) -> str:
        """The run's name, the prefix of all its names."""
        return f"{PREFIX}{self.slot}"

    def namespace(self, host: int) -> str:
        """Host ``host``'s namespace (also its hostname there)."""
        return f"{self.run}-{host}"

    def link(self, host: int, kind: str) -> str:
        """The root-namespace end of host ``host``'s ``api`` or ``db`` veth."""
        return f"{self.run}h{host}{kind[0]}"

    def address(self, host: int, kind: str, root_side: bool = False) -> str:
        """The host's address on its ``api`` or ``db`` link (the root side's with ``root_side``)."""
        base = 8 * host + (4 if kind == "db" else 0)
        return f"10.77.{self.slot}.{base + (1 if root_side else 2)}"


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip args``; its output (NetnsError with ip's message when it fails and ``check``)."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no iproute2, refused), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}probe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except FileNotFoundError:
        return "the ip command (iproute2) is not installed"
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    ip("netns", "del", probe, check=False)
    return None


def _veth(plan: Plan, host: int, kind: str) -> None:
    ns, outer = plan.namespace(host), plan.link(host, kind)
    ip("link", "add", outer, "type", "veth", "peer", "name", kind, "netns", ns)
    ip("addr", "add", f"{plan.address(host, kind, root_side=True)}/30", "dev", outer)
    ip("link", "set", outer, "up")
    ip("-n", ns, "addr", "add", f"{plan.address(host, kind)}/30", "dev", kind)
    ip("-n", ns, "link", "set", kind, "up")


def create_host(plan: Plan, host: int) -> None:
    """Host ``host``'s namespace with loopback, ``api`` and ``db`` up."""
    ns = plan.namespace(host)
    ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    _veth(plan, host, "api")
    _veth(plan, host, "db")


def set_db_link(plan: Plan, host: int, up: bool) -> None:
    """Take host ``host``'s database link down (inside its namespace) or up again.

    Down, the host's packets to the database have no route (new connections
    fail at once; those open hang until a TCP timeout ends them); up, its
    connected route comes back with it.
    """
    ip("-n", plan.namespace(host), "link", "set", "db", "up" if up else "down")


def in_namespace(plan: Plan, host: int, command: list[str]) -> list[str]:
    """``command`` run in host ``host``'s namespace, with the namespace's name as hostname
    (in a UTS namespace of its own: scheduler workers are named after their host)."""
    ns = plan.namespace(host)
    rename = 'hostname "$0" && exec "$@"'
    return ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", rename, ns, *command]


def pids_in(namespace: str) -> list[int]:
    """Processes running in ``namespace``."""
    return [int(p) for p in ip("netns", "pids", namespace, check=False).split()]


def kill_all_in(namespace: str, rounds: int = 20) -> int:
    """SIGKILL every process in ``namespace``, again until none is left (one not yet
    killed may start another meanwhile: a supervisor replacing its server); how many."""
    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in pids_in(namespace) if _alive(p)]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pids)
        time.sleep(0.05)
    return len(killed)


def _alive(pid: int) -> bool:
    """Running (not a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as proc:
            stat = proc.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def runs_present() -> set[str]:
    """Names of the runs that have a namespace or a root-namespace link here."""
    names = ip("netns", "list", check=False).split("\n")
    names = [line.split()[0] for line in names if line.strip()]
    links = [
        line.split(":")[1].strip().split("@")[0]
        for line in ip("-o", "link", "show", check=False).splitlines()
        if line.count(":") >= 2
    ]
    found = set()
    for name in [*names, *links]:
        match = _RUN_NAME.match(name)
        if match:
            found.add(match.group(1))
    return found


def remove_run(run: str) -> None:
    """Kill whatever runs in the run's namespaces, then delete them and its links."""
    pattern = re.compile(rf"^{re.escape(run)}(-\d+|h\d+[ad])$")
    for line in ip("netns", "list", check=False).splitlines():
        ns = line.split()[0] if line.strip() else ""
        if pattern.match(ns):
            kill_all_in(ns)
            ip("netns", "del", ns, check=False)
    for line in ip("-o", "link", "show", check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0] if line.count(":") >= 2 else ""
        if pattern.match(name):
            ip("link", "del", name, check=False)
