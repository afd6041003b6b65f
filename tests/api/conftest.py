"""An in-process berth app for fast HTTP-level tests (SQLite, or each database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from berth import settings as settings_mod
from berth.api.app import create_app
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.services import Services


def make_client(
    db: Database, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> Iterator[falcon.testing.TestClient]:
    """A Falcon test client on ``db`` (admin token by default), closed afterwards."""
    # wsgiref's validator insists on a Content-Type even for an empty 201;
    # the reference sends none there, and so does berth.
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    settings = settings_mod.load(
        environ={}, database_url=str(db.url), enforce_new_defaults=False, **overrides
    )
    services = Services(settings=settings, db=db, enforcer=Enforcer(False))
    app = create_app(settings, services)
    yield falcon.testing.TestClient(app, headers={"x-auth-token": "admin"})
    services.close()


@pytest.fixture
def client(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """A Falcon test client on a fresh SQLite database (admin token by default)."""
    yield from make_client(sqlite_db, monkeypatch)


@pytest.fixture
def any_client(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """The same on SQLite, PostgreSQL and MariaDB in turn."""
    yield from make_client(db, monkeypatch)
