"""WSGI entry point: ``berth.wsgi:application`` (settings from the environment)."""

from __future__ import annotations

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.logging import configure as configure_logging
from berth.placement import catalog
from berth.services import Services


def build() -> object:
    """Create the app for this process from ``BERTH_*`` settings."""
    settings = settings_mod.load()
    configure_logging(settings)
    services = Services.from_settings(settings)
    catalog.sync(services.db)
    return create_app(settings, services)


application = build()
