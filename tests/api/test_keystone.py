"""The keystone auth strategy: settings, wiring, headers -> credentials -> policy."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
from server import running_berth

from berth import settings as settings_mod
from berth.api import keystone
from berth.api.app import create_app
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.services import Services

from .fake_keystone import Token, running_keystone

pytest.importorskip("keystonemiddleware", reason="the berth[keystone] extra is not installed")

KEYSTONE_ENV = {
    "BERTH_AUTH_STRATEGY": "keystone",
    "BERTH_KEYSTONE_USERNAME": "placement",
    "BERTH_KEYSTONE_PASSWORD": "secret",
    "BERTH_KEYSTONE_PROJECT_NAME": "service",
}


def _settings(db: Database, **overrides: object) -> settings_mod.Settings:
    values: dict[str, object] = {
        "database_url": str(db.url),
        "auth_strategy": "keystone",
        "keystone_auth_url": "http://127.0.0.1:9/v3",
    }
    values.update(overrides)
    return settings_mod.load(environ={}, **values)


@pytest.fixture
def wrapped(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> keystone.PublicPathsFirst:
    """berth with the keystone strategy (production policy defaults)."""
    monkeypatch.setattr(falcon.testing.client.wsgiref.validate, "validator", lambda app: app)
    settings = _settings(sqlite_db)
    services = Services(settings=settings, db=sqlite_db, enforcer=Enforcer(True))
    app = create_app(settings, services)
    assert isinstance(app, keystone.PublicPathsFirst)
    return app


def test_options_from_settings(sqlite_db: Database) -> None:
    """Set values are passed to auth_token; unset ones are left to its defaults."""
    options = keystone.auth_token_options(
        _settings(
            sqlite_db,
            keystone_username="placement",
            keystone_password="pw",
            keystone_memcached_servers="10.0.0.1:11211,10.0.0.2:11211",
            keystone_insecure=True,
        )
    )
    assert options == {
        "auth_url": "http://127.0.0.1:9/v3",
        "www_authenticate_uri": "http://127.0.0.1:9/v3",
        "auth_type": "password",
        "username": "placement",
        "password": "pw",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "memcached_servers": "10.0.0.1:11211,10.0.0.2:11211",
        "insecure": "true",
    }


def test_options_from_a_placement_config_file(sqlite_db: Database, tmp_path: Path) -> None:
    """An existing placement.conf's [keystone_authtoken] can be reused as is."""
    conf = tmp_path / "placement.conf"
    conf.write_text("[keystone_authtoken]\nauth_url = http://k/v3\n")
    options = keystone.auth_token_options(
        _settings(sqlite_db, keystone_auth_url="", keystone_config_file=str(conf))
    )
    assert options == {"oslo_config_project": "placement", "oslo_config_file": str(conf)}


def test_auth_url_is_required(sqlite_db: Database) -> None:
    with pytest.raises(ValueError, match="keystone_auth_url or keystone_config_file"):
        keystone.auth_token_options(_settings(sqlite_db, keystone_auth_url=""))


def test_public_paths_bypass_auth_token(wrapped: keystone.PublicPathsFirst) -> None:
    """/, health and metrics answer without a token; the rest needs one."""
    client = falcon.testing.TestClient(wrapped)
    for path in ("/", "/healthcheck", "/healthcheck/ready", "/metrics"):
        assert client.simulate_get(path).status_code == 200, path
    # No token: auth_token refuses before anything reaches Keystone.
    refused = client.simulate_get("/resource_providers")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Keystone uri="http://127.0.0.1:9/v3"'


VERSION = {"openstack-api-version": "placement 1.9"}
ADMIN = {"x-user-id": "u1", "x-project-id": "p1", "x-roles": "admin,member,reader"}

# (headers auth_token would set, path, expected status)
POLICY_CASES = [
    (ADMIN, "/resource_providers", 200),
    ({**ADMIN, "x-roles": "Admin"}, "/resource_providers", 200),
    ({**ADMIN, "x-roles": "service"}, "/resource_providers", 200),
    ({**ADMIN, "x-roles": "reader"}, "/resource_providers", 403),
    ({**ADMIN, "x-roles": "member,reader"}, "/traits", 403),
    ({**ADMIN, "x-roles": "reader"}, "/usages?project_id=p1", 200),
    ({**ADMIN, "x-roles": "reader"}, "/usages?project_id=p2", 403),
    ({**ADMIN, "x-roles": "member"}, "/usages?project_id=p1", 403),
    # Placement's rules are project-scoped: a system-scoped token is refused.
    ({"x-user-id": "u1", "x-roles": "admin", "openstack-system-scope": "all"},
     "/resource_providers", 403),
    ({"x-user-id": "u1", "x-tenant-id": "p1", "x-roles": "admin"}, "/resource_providers", 200),
    ({"x-project-id": "p1", "x-roles": "admin"}, "/resource_providers", 401),
    ({**ADMIN, "x-identity-status": "Invalid"}, "/resource_providers", 401),
    ({**ADMIN, "x-identity-status": "Confirmed"}, "/resource_providers", 200),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "path", "status"), POLICY_CASES)
def test_identity_headers_to_policy(
    wrapped: keystone.PublicPathsFirst, headers: dict[str, str], path: str, status: int
) -> None:
    """The reference's RBAC defaults apply to the roles and scope Keystone vouched for."""
    # Talk to the Falcon app behind auth_token, as auth_token would.
    client = falcon.testing.TestClient(wrapped.app)
    got = client.simulate_get(path.split("?")[0], query_string=path.partition("?")[2],
                              headers={**VERSION, **headers})  # fmt: skip
    assert got.status_code == status, got.text


TOKENS = {
    "tok-admin": Token(user_id="alice", roles=["admin", "member", "reader"], project_id="p1"),
    "tok-reader": Token(user_id="bob", roles=["reader"], project_id="p2"),
    "tok-system": Token(user_id="carol", roles=["admin"], system=True),
}


@pytest.fixture(scope="module")
def berth_with_keystone() -> Iterator[tuple[str, object]]:
    """A real berth validating tokens with a (fake) Keystone."""
    with running_keystone(TOKENS) as fake:
        env = {**KEYSTONE_ENV, "BERTH_KEYSTONE_AUTH_URL": fake.url + "/v3"}
        with running_berth(env=env) as url:
            yield url, fake


def _get(url: str, token: str | None, extra: dict[str, str] | None = None) -> tuple[int, dict]:
    headers = {**VERSION, **(extra or {})}
    if token:
        headers["x-auth-token"] = token
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}


@pytest.mark.parametrize(
    ("token", "path", "status"),
    [
        (None, "/", 200),
        (None, "/healthcheck/ready", 200),
        (None, "/resource_providers", 401),
        ("no-such-token", "/resource_providers", 401),
        ("tok-admin", "/resource_providers", 200),
        ("tok-reader", "/resource_providers", 403),
        ("tok-reader", "/usages?project_id=p2", 200),
        ("tok-reader", "/usages?project_id=p1", 403),
        ("tok-system", "/resource_providers", 403),
    ],
)
def test_tokens_validated_by_keystone(
    berth_with_keystone: tuple[str, object], token: str | None, path: str, status: int
) -> None:
    """Through keystonemiddleware and a Keystone, end to end, on a real server."""
    url, _fake = berth_with_keystone
    got, headers = _get(url + path, token)
    assert got == status
    if status == 401:
        assert "Keystone uri=" in headers.get("www-authenticate", "")


def test_forged_identity_headers_are_ignored(berth_with_keystone: tuple[str, object]) -> None:
    """auth_token drops identity headers sent by the client before setting its own."""
    url, _fake = berth_with_keystone
    forged = {"X-Roles": "admin", "X-Project-Id": "p1", "X-Identity-Status": "Confirmed"}
    assert _get(url + "/resource_providers", "tok-reader", forged)[0] == 403
    assert _get(url + "/resource_providers", None, {**forged, "X-User-Id": "mallory"})[0] == 401


def test_openstack_cli_with_a_keystone_token(berth_with_keystone: tuple[str, object]) -> None:
    """The openstack CLI with a real token (validated by Keystone) works too."""
    pytest.importorskip("openstackclient", reason="python-openstackclient is not installed")
    from clients.helpers import OpenStackCLI, patch_client_cache

    patch_client_cache()
    url, _fake = berth_with_keystone
    admin = OpenStackCLI(["--os-auth-type", "admin_token", "--os-token", "tok-admin",
                          "--os-endpoint", url])  # fmt: skip
    assert "VCPU" in [row["name"] for row in admin("resource class list")]
    reader = OpenStackCLI(["--os-auth-type", "admin_token", "--os-token", "tok-reader",
                           "--os-endpoint", url])  # fmt: skip
    assert "403" in reader.fails("resource provider list")


def test_missing_keystonemiddleware_is_explained(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the extra, startup fails with the command that fixes it."""
    import builtins

    real_import = builtins.__import__

    def no_keystone(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("keystonemiddleware"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_keystone)
    with pytest.raises(keystone.KeystoneNotInstalled, match=r"berth\[keystone\]"):
        keystone.protect(lambda env, start: [], _settings(sqlite_db))


def test_settings_accept_keystone() -> None:
    assert settings_mod.load(environ={"BERTH_AUTH_STRATEGY": "keystone"}).auth_strategy == (
        "keystone"
    )
    assert json.dumps(keystone.OPTION_NAMES)  # every mapped setting exists
    for name in keystone.OPTION_NAMES:
        assert hasattr(settings_mod.Settings(), name)
