"""HAProxy for :mod:`berth.bench.multihost`: database forwarders (tcp) and the front (http).

Each host's database is reached through a forwarder of its own (one
``haproxy`` in tcp mode on the root side of the host's ``db`` link), so the
databases can keep listening on 127.0.0.1 only; the hosts are reached by
clients through one front (http mode, round robin, a host in rotation only
while ``GET /healthcheck/ready`` answers 200).  Every ``haproxy`` runs in the
foreground (``-db``) in a session of its own and stops on SIGTERM.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BINARY = "haproxy"
# The front takes a host out after FALL failed checks CHECK_INTERVAL apart.
CHECK_INTERVAL_MS = 500
FALL = 2
RISE = 1

_GLOBAL = """\
global
    maxconn 4096
defaults
    timeout connect 5s
"""


def unavailable() -> str | None:
    """Why HAProxy cannot be used here (not installed: ``apt-get install haproxy``), or None."""
    if shutil.which(BINARY) is None:
        return "haproxy is not installed (Debian package haproxy)"
    return None


def forwarder_config(listen: str, target: str) -> str:
    """A tcp forwarder from ``listen`` (host:port) to ``target``.

    Idle database connections are kept for an hour: a pool's connections
    sit idle between bursts, and the pool pings those it has not used for a
    second anyway.
    """
    return (
        _GLOBAL
        + "    timeout client 1h\n    timeout server 1h\n"
        + f"listen db\n    mode tcp\n    bind {listen}\n    server db {target}\n"
    )


def front_config(listen: str, backends: list[str]) -> str:
    """Round robin in http mode from ``listen`` over ``backends`` (host:port each)."""
    servers = "".join(
        f"    server host{i} {backend} check inter {CHECK_INTERVAL_MS} fall {FALL} rise {RISE}\n"
        for i, backend in enumerate(backends)
    )
    return (
        _GLOBAL
        + "    timeout client 60s\n    timeout server 60s\n"
        + "    timeout http-keep-alive 10s\n"
        + f"frontend api\n    mode http\n    bind {listen}\n    default_backend hosts\n"
        + "backend hosts\n    mode http\n    balance roundrobin\n"
        + "    option httpchk GET /healthcheck/ready\n    http-check expect status 200\n"
        + servers
    )


def start(config: str, path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``haproxy`` on ``config`` (written to ``path``), in the foreground of a new session;
    its output goes to ``path`` with ``.log``.  Raises RuntimeError if the config is refused."""
    path.write_text(config, encoding="utf-8")
    checked = subprocess.run([BINARY, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"haproxy refused {path}: {checked.stdout}{checked.stderr}")
    with open(path.with_suffix(".log"), "ab") as log:
        return subprocess.Popen(
            [BINARY, "-db", "-f", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
