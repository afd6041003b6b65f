"""What a benchmark runs against: a :class:`Target` named by a short string.

``inproc``      berth's WSGI app in this process, over ``--database-url``;
``serve``       ``berth serve`` started here on a free port over the same
                database (``--workers``, ``--server``), stopped afterwards;
``reference``   the OpenStack Placement started by ``berth bench reference start``;
``http://...``  any Placement-compatible URL.

A target knows its database when the lab can see it (berth's, or the
reference's), so populating and the capacity check can go straight to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import typer

from berth import settings as settings_mod
from berth.bench import launch, reference
from berth.bench.transport import HttpTransport, Transport, in_process


@dataclass
class Target:
    """A resolved target: how to reach it and what it is."""

    name: str  # "inproc", "serve", "reference" or the URL
    kind: str  # "berth-inproc", "berth-http" or "placement-http"
    url: str = ""
    database_url: str = ""  # the database behind it, when known
    schema: str = "berth"  # "berth" or "placement" (the reference's tables)
    started: float = 0.0  # monotonic time the server was spawned (serve)
    pid: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def is_berth(self) -> bool:
        """True for berth (in process or over HTTP)."""
        return self.kind.startswith("berth")

    def transport(self) -> Transport:
        """A fresh transport (one per process: connections are not shared)."""
        if self.kind == "berth-inproc":
            return in_process(self.database_url, **self.overrides)
        return HttpTransport(self.url)

    def describe(self) -> dict[str, Any]:
        """For a result line."""
        return {"name": self.name, "kind": self.kind, "url": self.url, "db": _db_kind(self)}


def _db_kind(target: Target) -> str:
    """The database kind behind the target (``postgresql``, ``sqlite``...; empty: unknown)."""
    url = target.database_url
    return url.split(":", 1)[0].split("+", 1)[0] if url else ""


@contextlib.contextmanager
def berth_server(
    database_url: str,
    workers: int = 1,
    server: str = "granian",
    env: dict[str, str] | None = None,
    log_path: str | None = None,
) -> Iterator[Target]:
    """Run ``berth serve`` on a free port over ``database_url``; yield it as a target."""
    quiet = {"BERTH_SERVER": server, "BERTH_LOG_REQUESTS": "false", **(env or {})}
    with launch.serve(database_url, workers, quiet, log_path) as served:
        yield Target(
            "serve", "berth-http", served.url, database_url, started=served.started, pid=served.pid
        )


@contextlib.contextmanager
def open_target(
    name: str,
    database_url: str = "",
    workers: int = 1,
    server: str = "granian",
    env: dict[str, str] | None = None,
) -> Iterator[Target]:
    """Resolve ``name`` (see the module docstring); servers it starts stop on exit."""
    if name == "inproc":
        yield Target("inproc", "berth-inproc", database_url=berth_database(database_url))
    elif name == "serve":
        with berth_server(berth_database(database_url), workers, server, env) as target:
            yield target
    elif name == "reference":
        state = reference.current()
        if state is None:
            raise typer.BadParameter(
                "the reference is not running (berth bench reference start)", param_hint="target"
            )
        yield Target("reference", "placement-http", state.url, state.database_url, "placement")
    elif name.startswith(("http://", "https://")):
        yield Target(name, _probe(name), name.rstrip("/"))
    else:
        raise typer.BadParameter(
            f"unknown target {name!r}: inproc, serve, reference or a URL", param_hint="target"
        )


def berth_database(database_url: str = "") -> str:
    """``database_url``, or berth's configured database when it is empty."""
    return database_url or settings_mod.load().effective_database_url


def _probe(url: str) -> str:
    """berth answers ``GET /scheduler``; other Placements do not."""
    status, _ = HttpTransport(url).request("GET", "/scheduler")
    return "berth-http" if status == 200 else "placement-http"
