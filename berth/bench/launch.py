"""Start ``berth serve`` on a free port, wait until it answers, stop it: for the lab and the tests.

The server runs in its own process group, with its data directory in a
temporary one; :func:`serve` stops it with SIGTERM, then SIGKILL for the whole
group after a timeout, and removes what it left.  (``berth serve`` stops its
server processes itself within ``BERTH_SHUTDOWN_GRACE``; they run in sessions
of their own and get SIGTERM from the kernel should it be killed.)

Should the process that called :func:`serve` be killed (a test worker, the
lab), the server gets SIGTERM from the kernel too (:func:`die_with_parent`),
so nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 20.0  # seconds from SIGTERM to SIGKILL
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Server:
    """A running ``berth serve``."""

    url: str
    pid: int  # berth serve, the supervisor (its server processes and their workers are below it)
    started: float  # monotonic time it was spawned


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``signum`` from the kernel when its parent dies.

    Linux only (elsewhere a no-op).  "Parent" is the *thread* that started the
    child: start it from a thread that lives as long as the child should.  A
    child that changes its user (``mariadbd --user``, run as root) loses the
    setting: switch users before (``setpriv --pdeathsig``) instead.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return lambda: None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl: nobody would tell us
            os._exit(1)

    return arm


def follow_parent(signum: int = signal.SIGTERM) -> None:
    """Called first in a :mod:`multiprocessing` child: it gets ``signum`` from the kernel
    when the process that started it dies (Linux only; elsewhere a no-op).

    A client process waiting at a barrier would otherwise outlive a lab killed
    with SIGTERM or SIGKILL.
    """
    parent = multiprocessing.parent_process()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(PR_SET_PDEATHSIG, signum)
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl
        os._exit(1)


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 120.0) -> None:
    """Block until ``GET url/`` answers (RuntimeError if the server died or never did)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer at {url} within {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to the server; after ``timeout``, SIGKILL to its whole process group."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its children then get their parent-death SIGTERM
        proc.wait()


def server_env(
    data_dir: str,
    database_url: str | None,
    port: int,
    workers: int,
    env: dict[str, str] | None,
    quiet: bool = True,
) -> dict[str, str]:
    """This process's environment with the ``BERTH_*`` settings of a server on ``port``.

    ``quiet`` turns the log level down to warnings (tests); without it the
    server logs as berth does by default (a benchmark of the defaults).
    """
    full = dict(os.environ)
    full.update(
        {
            "BERTH_DATA_DIR": data_dir,
            "BERTH_DATABASE_URL": database_url or f"sqlite:///{data_dir}/berth.sqlite",
            "BERTH_BIND": f"127.0.0.1:{port}",
            "BERTH_WORKERS": str(workers),
        }
    )
    if quiet:
        full["BERTH_LOG_LEVEL"] = "WARNING"
    full.update(env or {})
    return full


@contextlib.contextmanager
def serve(
    database_url: str | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    log_path: str | None = None,
    cwd: str | Path | None = None,
    quiet: bool = True,
) -> Iterator[Server]:
    """Run ``berth serve`` on a free port (a fresh SQLite file when no database is given).

    ``env`` adds or overrides ``BERTH_*`` variables (``quiet``: warnings and
    errors only, unless ``env`` says otherwise); the server's output goes
    to ``log_path`` (default: a file in its temporary data directory), whose
    tail is printed to stderr when a RuntimeError ends the block (the server
    did not come up, or a run against it failed).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="berth-serve-") as tmp:
        log_file = log_path or os.path.join(tmp, "server.log")
        full_env = server_env(tmp, database_url, port, workers, env, quiet)
        started = time.monotonic()
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "berth.cli", "serve"],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url, proc)
                yield Server(url, proc.pid, started)
            except RuntimeError:
                _print_tail(log_file)
                raise
            finally:
                stop(proc)


def _print_tail(log_file: str) -> None:
    """The end of the server's log, to stderr (it did not come up, or a run failed)."""
    sys.stderr.write(Path(log_file).read_text(encoding="utf-8", errors="replace")[-3000:])
