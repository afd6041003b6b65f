"""What Linux's ``/proc`` tells about other processes: a server's workers and their
resident memory, and the CPU time the database servers on this machine have used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

DATABASE_SERVERS = ("postgres", "mariadbd", "mysqld")


def _stats() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the fields after it) of every process's ``/proc/<pid>/stat``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        yield int(stat.parent.name), head.partition("(")[2], rest.split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    return [child for child, _, fields in _stats() if int(fields[1]) == pid]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: its children, theirs, and so on (one read of /proc)."""
    below: dict[int, list[int]] = {}
    for child, _, fields in _stats():
        below.setdefault(int(fields[1]), []).append(child)
    found, todo = [], list(below.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo.extend(below.get(found[-1], []))
    return found


def workers(pid: int) -> list[int]:
    """The processes below ``pid`` that have none below them: a server's worker processes.

    ``berth serve`` runs each granian worker under a granian process of its own,
    and gunicorn's under gunicorn's master.
    """
    below = descendants(pid)
    parents = {int(fields[1]) for p, _, fields in _stats() if p in below}
    return [p for p in below if p not in parents]


def running(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (gone or exited but not yet reaped: not running)."""
    states = {pid: fields[0] for pid, _, fields in _stats()}
    return [pid for pid in pids if states.get(pid, "Z") not in ("Z", "X")]


def killed(pid: int) -> bool:
    """Whether ``pid`` has a SIGKILL pending: it ends as soon as the kernel returns to it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    pending = 0
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            pending |= int(line.split()[1], 16)
    return bool(pending & (1 << (9 - 1)))  # bit n-1 is signal n; SIGKILL is 9


def _cpu_ticks(fields: list[str]) -> int:
    """utime + stime + cutime + cstime of one ``stat`` line's fields after the name."""
    return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])


def database_cpu_s() -> float:
    """CPU seconds (user + system) used so far by every database server process here.

    A process's reaped children count too (``cutime``/``cstime``): a PostgreSQL
    backend that ends between two readings moves its time into its
    postmaster's, so the clock never runs backwards when connections close.
    """
    ticks = sum(_cpu_ticks(f) for _, name, f in _stats() if name.startswith(DATABASE_SERVERS))
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every process below it
    (their reaped children included): a server's, workers and all."""
    tree = {pid, *descendants(pid)}
    ticks = sum(_cpu_ticks(fields) for p, _, fields in _stats() if p in tree)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_by_part(parts: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """CPU seconds so far of each part (its processes and every one below them, reaped
    children included), and of the database servers as ``database``: one read of /proc.

    A process listed in one part and below another's root counts in both: callers
    subtract (the bench's own tree holds the server it started).
    """
    stats = list(_stats())
    below: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for pid, _, fields in stats:
        below.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = _cpu_ticks(fields)
    hz = os.sysconf("SC_CLK_TCK")
    found = {}
    for name, roots in parts.items():
        tree, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid not in tree:
                tree.add(pid)
                todo.extend(below.get(pid, []))
        found[name] = sum(ticks.get(pid, 0) for pid in tree) / hz
    db = sum(_cpu_ticks(f) for _, name, f in stats if name.startswith(DATABASE_SERVERS))
    found["database"] = db / hz
    return found


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (0.0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_rss_mb(master: int) -> list[float]:
    """RSS of each worker of the server whose main process is ``master``."""
    return sorted((rss_mb(worker) for worker in workers(master)), reverse=True)
