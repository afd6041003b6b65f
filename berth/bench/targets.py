"""What a benchmark runs against: a :class:`Target` named by a short string.

``inproc``      berth's WSGI app in this process, over ``--database-url``;
``serve``       ``berth serve`` started here on a free port over the same
                database (``--server-workers``, ``--server``), with berth's
                default settings but for the ones a run changes, stopped
                afterwards;
``reference``   the OpenStack Placement started by ``berth bench reference start``;
``http://...``  any Placement-compatible URL.

A target knows its database when the lab can see it (berth's, or the
reference's), so populating and the capacity check can go straight to it.
It also knows the conditions it runs under (:meth:`Target.conditions`):
the server kind and its worker processes, the database kind, and every
berth setting that differs from its default, read the way the server reads
them (its environment, including ``BERTH_*`` variables inherited from the
lab's, and ``BERTH_CONFIG``); every result line carries them.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    overrides: dict[str, Any] = field(default_factory=dict)  # in-process settings
    server: str = ""  # granian or gunicorn (a server the lab started, or the reference's)
    server_workers: int = 0  # its worker processes (0: not known)
    settings: dict[str, Any] = field(default_factory=dict)  # berth's, where not the default

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

    def conditions(self) -> dict[str, Any]:
        """What a figure measured on this target depends on, for every result line."""
        if self.kind == "berth-inproc":
            self.settings = non_default(settings_mod.load(**self.overrides), IN_PROCESS)
        return {
            "target": self.name,
            "kind": self.kind,
            "db": _db_kind(self),
            "server": self.server,
            "server_workers": self.server_workers,
            "settings": dict(self.settings),
        }


# The lab's own settings, not the server's behaviour: where it listens, keeps
# its files and finds its database (whose kind is recorded apart), and the NATS
# server a pull run starts for itself.
LAB_SETTINGS = frozenset({"data_dir", "bind", "database_url", "workers", "server", "nats_url"})
# In process there is no server: logging is the lab's console, not a measured cost.
IN_PROCESS = LAB_SETTINGS | {"log_level", "log_requests", "log_json"}


def non_default(
    loaded: settings_mod.Settings, skip: frozenset[str] = LAB_SETTINGS
) -> dict[str, Any]:
    """The settings of ``loaded`` that differ from berth's defaults (``skip`` left out)."""
    defaults = settings_mod.Settings()
    return {
        f.name: getattr(loaded, f.name)
        for f in dataclasses.fields(settings_mod.Settings)
        if f.name not in skip and getattr(loaded, f.name) != getattr(defaults, f.name)
    }


def served_settings(database_url: str, workers: int, env: dict[str, str]) -> dict[str, Any]:
    """What a ``berth serve`` started with ``env`` runs with, where not the default.

    Read as the server reads them: this process's environment, the lab's
    variables and ``env`` over it, and ``BERTH_CONFIG`` if one is named.
    A value berth would refuse stops the run here, before any server starts.
    """
    full = launch.server_env("/nonexistent", database_url, 1, workers, env, quiet=False)
    try:
        loaded = settings_mod.load(full)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
    return non_default(loaded)


def _db_kind(target: Target) -> str:
    """The database kind behind the target (``postgresql``, ``sqlite``...; empty: unknown)."""
    url = target.database_url
    return url.split(":", 1)[0].split("+", 1)[0] if url else ""


@contextlib.contextmanager
def berth_server(
    database_url: str,
    workers: int = 2,
    server: str = "granian",
    env: dict[str, str] | None = None,
    log_path: str | None = None,
    quiet: bool = False,
) -> Iterator[Target]:
    """Run ``berth serve`` on a free port over ``database_url``; yield it as a target.

    Its settings are berth's defaults but for ``env`` (and whatever ``BERTH_*``
    the lab's own environment holds); ``quiet`` also turns request logging off
    and the log level down, as the fuzzer wants.
    """
    full = {"BERTH_SERVER": server, **(env or {})}
    if quiet:
        full = {"BERTH_LOG_REQUESTS": "false", "BERTH_LOG_LEVEL": "WARNING", **full}
    chosen = served_settings(database_url, workers, full)
    with launch.serve(database_url, workers, full, log_path, quiet=quiet) as served:
        yield Target(
            "serve",
            "berth-http",
            served.url,
            database_url,
            started=served.started,
            pid=served.pid,
            server=server,
            server_workers=workers,
            settings=chosen,
        )


@contextlib.contextmanager
def open_target(
    name: str,
    database_url: str = "",
    workers: int = 2,
    server: str = "granian",
    env: dict[str, str] | None = None,
) -> Iterator[Target]:
    """Resolve ``name`` (see the module docstring); servers it starts stop on exit.

    ``env`` holds the ``BERTH_*`` settings a run changes: a served berth gets
    them as its environment, berth in process as overrides.
    """
    if name == "inproc":
        overrides = {k.removeprefix("BERTH_").lower(): v for k, v in (env or {}).items()}
        yield Target(
            "inproc", "berth-inproc", database_url=berth_database(database_url), overrides=overrides
        )
    elif name == "serve":
        with berth_server(berth_database(database_url), workers, server, env) as target:
            yield target
    elif name == "reference":
        state = reference.current()
        if state is None:
            raise typer.BadParameter(
                "the reference is not running (berth bench reference start)", param_hint="target"
            )
        yield Target(
            "reference", "placement-http", state.url, state.database_url, "placement",
            server="gunicorn", server_workers=state.workers,
        )  # fmt: skip
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
