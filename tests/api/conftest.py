"""An in-process berth app on SQLite for fast HTTP-level tests."""

from __future__ import annotations

from collections.abc import Iterator

import falcon.testing
import pytest

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.services import Services


@pytest.fixture
def client(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """A Falcon test client on a fresh SQLite database (admin token by default)."""
    # wsgiref's validator insists on a Content-Type even for an empty 201;
    # the reference sends none there, and so does berth.
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    settings = settings_mod.load(
        environ={}, database_url=str(sqlite_db.url), enforce_new_defaults=False
    )
    services = Services(settings=settings, db=sqlite_db, enforcer=Enforcer(False))
    app = create_app(settings, services)
    yield falcon.testing.TestClient(app, headers={"x-auth-token": "admin"})
    services.close()
