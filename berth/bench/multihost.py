"""Several berth hosts on this machine, each ``berth serve`` in a network namespace of its own.

::

                clients (round robin themselves, or through the front)
                                   |
                 front: haproxy, http, round robin  127.0.0.1:<port>
                /                  |                  \\
    ns bmh<s>-0: berth serve   ns bmh<s>-1: ...     ns bmh<s>-2: ...
    api 10.77.<s>.2:8780       api 10.77.<s>.10     api 10.77.<s>.18
    db  10.77.<s>.6            db  10.77.<s>.14     db  10.77.<s>.22
                \\                  |                  /
      forwarders: haproxy, tcp, one per host, on the root side of its db link
                \\                  |                  /
         PostgreSQL 127.0.0.1:5432    -- or --    Galera nodes 1, 2, 3

:func:`deploy` starts N hosts on one database (every host on the same URL)
or on several (host *i* on URL *i* mod their number: a Galera cluster, one
node per host), migrates the schema once first, waits until each host and
the front answer ``/healthcheck/ready``, and stops everything at the end.
:class:`Deployment` adds, stops and kills hosts, and cuts a host off from its
database (its ``db`` link down inside its namespace) and back.  The plumbing
is in :mod:`berth.bench.netns`, the proxies in :mod:`berth.bench.haproxy`,
the run's names and its teardown after a crash in :mod:`berth.bench.runs`;
the command line (``python -m berth.bench.multihost up|down|cut|heal``, also
``berth bench hosts ...``) in :mod:`berth.bench.cli_hosts`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from berth.bench import haproxy, netns, runs
from berth.bench.launch import free_port, server_env

PORT = 8780
READY_TIMEOUT = 120.0


def unavailable() -> str | None:
    """Why several hosts cannot run here (namespaces, HAProxy), or None."""
    return netns.unavailable() or haproxy.unavailable()


class RoundRobin:
    """Client-side round robin: ``next()`` is the next host's URL (thread-safe)."""

    def __init__(self, urls: list[str]) -> None:
        self._cycle = itertools.cycle(urls)
        self._lock = threading.Lock()

    def __iter__(self) -> RoundRobin:
        return self

    def __next__(self) -> str:
        with self._lock:
            return next(self._cycle)


@dataclass
class Host:
    """One ``berth serve`` in its namespace, and the forwarder to its database."""

    index: int
    url: str  # where clients reach it
    database_url: str  # as the host sees it (through its forwarder)
    log: Path
    forwarder: subprocess.Popen[bytes]
    server: subprocess.Popen[bytes] | None = None


@dataclass
class Deployment:
    """A run's hosts, their forwarders and the front; see the module docstring."""

    plan: netns.Plan
    directory: Path
    database_urls: list[str]
    workers: int
    env: dict[str, str]
    hosts: list[Host] = field(default_factory=list)
    front: subprocess.Popen[bytes] | None = None
    front_url: str | None = None

    @property
    def urls(self) -> list[str]:
        """Every host's URL, in order (for clients that round robin themselves)."""
        return [h.url for h in self.hosts]

    def round_robin(self) -> RoundRobin:
        """The hosts' URLs in turn, for clients that spread their requests themselves."""
        return RoundRobin(self.urls)

    def add_host(self, wait: bool = True) -> Host:
        """Start one more host (on the next database URL in turn); returns once it is ready
        (at once without ``wait``: then :meth:`wait_ready`)."""
        index = len(self.hosts)
        if index >= netns.MAX_HOSTS:
            raise ValueError(f"at most {netns.MAX_HOSTS} hosts")
        netns.create_host(self.plan, index)
        target = make_url(self.database_urls[index % len(self.database_urls)])
        listen = f"{self.plan.address(index, 'db', root_side=True)}:{target.port}"
        forwarder = self._spawn_proxy(
            f"db{index}", haproxy.forwarder_config(listen, f"{target.host}:{target.port}")
        )
        seen = target.set(host=self.plan.address(index, "db", root_side=True))
        host = Host(
            index=index,
            url=f"http://{self.plan.address(index, 'api')}:{PORT}",
            database_url=seen.render_as_string(hide_password=False),
            log=self.directory / f"host{index}.log",
            forwarder=forwarder,
        )
        self.hosts.append(host)
        self.start(index, wait)
        return host

    def start(self, index: int, wait: bool = True) -> None:
        """(Re)start host ``index``'s ``berth serve``; returns once it answers ready
        (at once without ``wait``)."""
        host = self.hosts[index]
        data = self.directory / f"host{index}"
        data.mkdir(exist_ok=True)
        env = server_env(str(data), host.database_url, PORT, self.workers, self.env)
        env.update(
            {
                "BERTH_BIND": f"{self.plan.address(index, 'api')}:{PORT}",
                runs.RUN_VARIABLE: self.plan.run,
            }
        )
        command = [sys.executable, "-m", "berth.cli", "serve", "--no-migrate"]
        with open(host.log, "ab") as log:
            host.server = subprocess.Popen(
                netns.in_namespace(self.plan, index, command),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        runs.record_pid(self.plan, host.server.pid)
        if wait:
            self.wait_ready(index)

    def wait_ready(self, index: int) -> None:
        """Block until host ``index`` answers ``/healthcheck/ready`` with 200."""
        host = self.hosts[index]
        assert host.server is not None
        wait_ready(host.url + "/healthcheck/ready", host.server, host.log)

    def stop(self, index: int) -> None:
        """Stop host ``index`` cleanly (SIGTERM to its process group, as an operator would)."""
        server = self.hosts[index].server
        if server is not None and server.poll() is None:
            runs.signal_group(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=runs.STOP_GRACE)
            except subprocess.TimeoutExpired:
                netns.kill_all_in(self.plan.namespace(index))
                server.wait()

    def kill(self, index: int) -> None:
        """SIGKILL every process of host ``index`` at once (a crash: nothing cleans up)."""
        netns.kill_all_in(self.plan.namespace(index))
        server = self.hosts[index].server
        if server is not None:
            server.wait()

    def cut(self, index: int) -> None:
        """Cut host ``index`` off from its database (its ``db`` link down)."""
        netns.set_db_link(self.plan, index, up=False)

    def heal(self, index: int) -> None:
        """Give host ``index`` its database link back."""
        netns.set_db_link(self.plan, index, up=True)

    def start_front(self) -> str:
        """Start (or restart, after hosts were added) the HAProxy front; its URL."""
        port = free_port() if self.front_url is None else int(self.front_url.rsplit(":", 1)[1])
        backends = [h.url.removeprefix("http://") for h in self.hosts]
        if self.front is not None:
            self._stop_proxy(self.front)
        self.front = self._spawn_proxy("front", haproxy.front_config(f"127.0.0.1:{port}", backends))
        self.front_url = f"http://127.0.0.1:{port}"
        wait_ready(self.front_url + "/healthcheck/ready", self.front, self.directory / "front.log")
        return self.front_url

    def _spawn_proxy(self, name: str, config: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, runs.RUN_VARIABLE: self.plan.run}
        proc = haproxy.start(config, self.directory / f"{name}.cfg", env)
        runs.record_pid(self.plan, proc.pid)
        return proc

    @staticmethod
    def _stop_proxy(proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the hosts (cleanly, in parallel), the proxies; delete namespaces and links."""
        for host in self.hosts:
            if host.server is not None and host.server.poll() is None:
                runs.signal_group(host.server.pid, signal.SIGTERM)
        for host in self.hosts:
            if host.server is not None:
                try:
                    host.server.wait(timeout=runs.STOP_GRACE)
                except subprocess.TimeoutExpired:
                    netns.kill_all_in(self.plan.namespace(host.index))
                    host.server.wait()
        for proc in [h.forwarder for h in self.hosts] + ([self.front] if self.front else []):
            self._stop_proxy(proc)
        runs.teardown(self.plan.run, self.directory.parent, grace=1.0)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Block until ``url`` answers 200; RuntimeError (with the log's tail) if the process
    ended or it never did within READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process ended with {proc.returncode}\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not ready within {READY_TIMEOUT}s\n{_tail(log)}")


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(encoding="utf-8", errors="replace")[-3000:]
    return ""


def migrate(database_url: str) -> None:
    """Create or upgrade the schema and load the catalog, once (as ``berth db upgrade``)."""
    from berth.db import migrate as migrations
    from berth.db.engine import Database
    from berth.placement import catalog

    db = Database(database_url)
    try:
        migrations.upgrade(db)
        catalog.sync(db)
    finally:
        db.dispose()


@contextlib.contextmanager
def deploy(
    database_urls: list[str],
    hosts: int,
    workers: int = 1,
    env: dict[str, str] | None = None,
    front: bool = True,
    root: Path = runs.ROOT,
) -> Iterator[Deployment]:
    """Start ``hosts`` berth hosts (and the front unless ``front`` is False), stop them after.

    ``database_urls`` are as this (the root) namespace reaches the databases;
    host *i* uses URL *i* mod their number.  ``env`` adds ``BERTH_*`` settings
    for every host.  Runs left by a crashed process are removed first.
    """
    runs.teardown_stale(root)
    migrate(database_urls[0])
    plan = runs.allocate(root)
    deployment = Deployment(plan, root / plan.run, list(database_urls), workers, dict(env or {}))
    try:
        for _ in range(hosts):
            deployment.add_host(wait=False)
        for index in range(hosts):
            deployment.wait_ready(index)
        if front:
            deployment.start_front()
        yield deployment
    finally:
        deployment.close()


if __name__ == "__main__":
    from berth.bench.cli_hosts import app

    app()
