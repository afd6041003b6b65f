"""WSGI entry point: ``berth.wsgi:application`` (settings from the environment)."""

from __future__ import annotations

from multiprocessing import util as mp_util

import structlog

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db.engine import unavailable
from berth.logging import configure as configure_logging
from berth.placement import catalog
from berth.services import Services

log = structlog.get_logger("berth.wsgi")


def build() -> object:
    """Create the app for this process from ``BERTH_*`` settings."""
    settings = settings_mod.load()
    configure_logging(settings)
    services = Services.from_settings(settings)
    close_at_exit(services)
    try:
        catalog.sync(services.db)
    except Exception as exc:
        # A worker (re)started while the database is away still starts: it
        # answers 503 until the database is back (``berth serve`` and
        # ``berth db upgrade`` load the standard classes and traits too).
        reason = unavailable(exc)
        if reason is None:
            raise
        log.warning("database unavailable at worker start", reason=reason, error=str(exc))
    # Every serving worker sweeps pull dispatch's leftovers (compare-and-swap makes
    # concurrent sweepers safe); its thread stops with close().
    services.pull.start_sweeper()
    return create_app(settings, services)


def close_at_exit(services: Services) -> None:
    """Close ``services`` when the server ends this worker process, after its last request.

    multiprocessing's exit finalizers run in both servers' workers: granian's
    are multiprocessing children, which run them and then leave with
    ``os._exit`` (so ``atexit`` would not run); gunicorn's leave with
    ``sys.exit``, and multiprocessing runs them from ``atexit``.
    """
    mp_util.Finalize(services, services.close, exitpriority=0)


application = build()
