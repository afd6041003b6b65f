"""Run the API under granian (default) or gunicorn, with ``berth serve`` as their supervisor.

granian is the default because it keeps client connections alive and answered
more requests with a much lower tail in ``berth bench workers`` (10,000 hosts,
2 workers: 904 vs 688 req/s, p99 17 vs 105 ms; docs/benchmarks.md).  gunicorn
(gthread workers) remains available for sites standardised on it.

``berth serve`` stays a Python process, the :class:`Supervisor`, whose
children are the server processes:

* granian, on Linux: one granian process with one worker per
  ``BERTH_WORKERS`` (a *slot*), all on the same port: granian's workers bind
  it with SO_REUSEPORT, so the kernel shares connections among them.  When a
  worker dies its slot ends and the supervisor starts it again, while the
  other slots go on serving.  granian's own respawning is not used: it stops
  the whole server when one worker dies twice within 5.5 seconds of its
  respawn ("Worker crash loop detected, exiting"), a limit no option changes.
  Elsewhere (no SO_REUSEPORT sharing) one granian runs all the workers and is
  started again as a whole.
* gunicorn: one master with its workers; it replaces dead workers itself.

Each child runs in a session of its own, so a signal sent to berth's process
group (Ctrl-C in a terminal, ``kill -INT -PGID``) reaches the supervisor only,
which sends each child one SIGTERM: the servers stop accepting, let requests
in flight finish and exit (granian through :mod:`berth.granian_main`, which
makes sure its processes do not miss that signal).  Whatever is still
running ``BERTH_SHUTDOWN_GRACE`` seconds after the signal is killed; a second
SIGINT or SIGTERM kills at once.  Should the supervisor itself die, the kernel
sends its children SIGTERM (Linux's parent-death signal).  Before anything
starts, a port another server listens on ends ``berth serve`` at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import structlog
from prometheus_client import multiprocess

from berth.settings import Settings

log = structlog.get_logger("berth.server")

GRANIAN_BACKLOG = 1024  # granian's default, whose share per worker bounds its requests in flight
QUICK_S = 5.0  # a child ending sooner after its start ended "quickly" (it cannot boot?)
MAX_DELAY_S = 8.0  # the longest pause before starting again a child that keeps ending quickly
SWEEP_S = 5.0  # how often the metrics of vanished worker processes are dropped
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def commands(settings: Settings) -> list[list[str]]:
    """The command line of each server process the supervisor runs."""
    host, port = settings.host_port
    grace = str(settings.shutdown_grace)
    if settings.server == "gunicorn":
        gunicorn = ["gunicorn", "--no-control-socket", "--workers", str(settings.workers)]
        gunicorn += ["--bind", f"{host}:{port}", "--worker-class", "gthread"]
        gunicorn += ["--threads", str(settings.threads)]
        gunicorn += ["--keep-alive", "5", "--graceful-timeout", grace]
        return [[sys.executable, "-m", *gunicorn, "berth.wsgi:application"]]
    slots, per_slot = (settings.workers, 1) if sys.platform == "linux" else (1, settings.workers)
    granian = ["berth.granian_main", "--interface", "wsgi", "--host", host, "--port", str(port)]
    granian += ["--workers", str(per_slot), "--workers-kill-timeout", grace]
    granian += ["--blocking-threads", str(settings.threads)]
    granian += ["--backpressure", str(max(1, GRANIAN_BACKLOG // settings.workers))]
    granian += ["--log-level", "warning"]
    return [[sys.executable, "-m", *granian, "berth.wsgi:application"] for _ in range(slots)]


def serve(settings: Settings) -> int:
    """Run the server processes until SIGINT or SIGTERM; the exit status."""
    taken = port_taken(*settings.host_port)
    if taken:
        log.error("cannot listen", bind=settings.bind, error=taken)
        return 1
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Supervisor(commands(settings), settings.shutdown_grace, metrics_dir).run()


def port_taken(host: str, port: int) -> str | None:
    """Why nothing new can listen on ``host:port`` (another server does), or None.

    Checked once before starting: granian's workers would otherwise fail over
    and over, or, where the other server is a granian too, share its port.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind(address)
        except OSError as exc:
            return str(exc)
    return None


@dataclass
class Child:
    """One server process the supervisor keeps running."""

    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0  # exits in a row, each within QUICK_S of its start
    due: float | None = None  # when to start it again (monotonic), after it ended


@dataclass
class Supervisor:
    """Runs ``argvs`` as children, starts again any that ends, stops all on SIGINT or SIGTERM."""

    argvs: list[list[str]]
    grace: float
    metrics_dir: str | None = None
    children: list[Child] = field(init=False)
    stop_at: float | None = field(default=None, init=False)  # the deadline, once stopping
    swept: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.children = [Child(argv) for argv in self.argvs]

    def run(self) -> int:
        """Serve until asked to stop; 0 if all children then ended within the grace, else 1."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)  # every signal caught writes its number there
        for signum in (*STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, _noted)
        try:
            for child in self.children:
                self._start(child)
            return self._loop(wake_r)
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)

    def _loop(self, wake: int) -> int:
        while True:
            for signum in _signals(wake, self._timeout()):
                self._on_signal(signum)
            self._reap()
            now = time.monotonic()
            if self.stop_at is not None:
                if all(child.proc is None for child in self.children):
                    log.info("stopped")
                    return 0
                if now >= self.stop_at:
                    self._kill_all()
                    return 1
                continue
            for child in self.children:
                if child.proc is None and child.due is not None and now >= child.due:
                    self._start(child)
            if now - self.swept >= SWEEP_S:
                self._forget_dead_workers()

    def _timeout(self) -> float:
        """Seconds until the next thing to do without a signal."""
        now = time.monotonic()
        if self.stop_at is not None:
            return max(0.0, self.stop_at - now)
        dues = [c.due for c in self.children if c.proc is None and c.due is not None]
        return max(0.0, min([*dues, self.swept + SWEEP_S]) - now)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum in STOP_SIGNALS and self.stop_at is None:
            log.info("stopping", signal=name, grace_s=self.grace)
            self.stop_at = time.monotonic() + self.grace
            self._send(signal.SIGTERM)
        elif signum in STOP_SIGNALS:
            log.warning("second stop signal: killing now", signal=name)
            self.stop_at = time.monotonic()
        elif signum == signal.SIGHUP and self.stop_at is None:
            self._send(signal.SIGHUP)

    def _send(self, signum: signal.Signals) -> None:
        """``signum`` to each running child (the server's master, which tells its workers)."""
        for child in self.children:
            if child.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, start_new_session=True, preexec_fn=_die_with_us())
        child.started = time.monotonic()
        child.due = None

    def _reap(self) -> None:
        """Note the children that ended; schedule their restart unless stopping."""
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            pid, status = child.proc.pid, child.proc.returncode
            _kill_group(pid)  # any of its processes it left behind
            child.proc = None
            if self.stop_at is not None:
                continue
            lived = time.monotonic() - child.started
            child.quick_exits = child.quick_exits + 1 if lived < QUICK_S else 0
            # At once, unless it keeps ending quickly: then 0.5, 1, 2, 4, 8, 8... seconds.
            delay = min(MAX_DELAY_S, 0.25 * 2 ** (child.quick_exits - 1))
            delay = delay if child.quick_exits > 1 else 0.0
            child.due = time.monotonic() + delay
            log.warning("server process ended", pid=pid, status=status, restart_in_s=delay)
            self._forget_dead_workers()

    def _kill_all(self) -> None:
        """SIGKILL to every child's process group, and wait for them."""
        log.warning("killing what is left after the grace period", grace_s=self.grace)
        for child in self.children:
            if child.proc is not None:
                _kill_group(child.proc.pid)
                child.proc.wait()
                child.proc = None

    def _forget_dead_workers(self) -> None:
        """Drop the live gauges of worker processes that are gone (their counters stay)."""
        self.swept = time.monotonic()
        if not self.metrics_dir:
            return
        for path in Path(self.metrics_dir).glob("gauge_live*_*.db"):
            pid = path.stem.rpartition("_")[2]  # gauge_livesum_<pid>.db
            if pid.isdigit() and not _exists(int(pid)):
                multiprocess.mark_process_dead(int(pid), self.metrics_dir)  # type: ignore[no-untyped-call]


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The signal's number reaches the supervisor's loop through the wakeup fd."""


def _signals(wake: int, timeout: float) -> list[int]:
    """The signals caught within ``timeout`` seconds (empty if none)."""
    readable, _, _ = select.select([wake], [], [], timeout)
    if not readable:
        return []
    with contextlib.suppress(BlockingIOError):
        return list(os.read(wake, 512))
    return []


def _die_with_us() -> Callable[[], None] | None:
    """For the child, before it runs its command: SIGTERM to it when the supervisor dies (Linux)."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def preexec() -> None:
        for signum in (*STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)  # not the supervisor's, until the exec
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl
            os._exit(1)

    return preexec


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now has that pid
        return True
    return True
