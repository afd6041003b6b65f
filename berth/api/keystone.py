"""Keystone authentication (``BERTH_AUTH_STRATEGY=keystone``).

Two pieces, as in the reference:

* :func:`protect` wraps the WSGI application in keystonemiddleware's
  ``auth_token``, which validates the ``X-Auth-Token`` of every request with
  Keystone (caching the answers), strips any identity headers the client
  sent, and sets its own (``X-User-Id``, ``X-Project-Id``, ``X-Roles``,
  ``OpenStack-System-Scope``, ``X-Identity-Status`` ...).  The public paths
  (``/``, the health checks, ``/metrics``) bypass it.
* :class:`KeystoneCredentials`, a Falcon middleware, turns those headers into
  the same :class:`~berth.api.context.Credentials` the other strategies
  produce, so the reference's policy defaults (``berth.policy``) apply
  to Keystone roles unchanged.

keystonemiddleware is an optional dependency: ``pip install 'berth[keystone]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import falcon

from berth.api.context import Credentials
from berth.api.errors import HTTPError
from berth.api.middleware import PUBLIC_PATHS
from berth.settings import Settings

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# berth setting -> keystonemiddleware (``[keystone_authtoken]``) option.
OPTION_NAMES = {
    "keystone_auth_url": "auth_url",
    "keystone_www_authenticate_uri": "www_authenticate_uri",
    "keystone_auth_type": "auth_type",
    "keystone_username": "username",
    "keystone_password": "password",
    "keystone_project_name": "project_name",
    "keystone_user_domain_name": "user_domain_name",
    "keystone_project_domain_name": "project_domain_name",
    "keystone_region_name": "region_name",
    "keystone_interface": "interface",
    "keystone_cafile": "cafile",
    "keystone_memcached_servers": "memcached_servers",
}

# Used only when there is no keystone_config_file to take them from.
FALLBACKS = {
    "auth_type": "password",
    "user_domain_name": "Default",
    "project_domain_name": "Default",
}


class KeystoneNotInstalled(RuntimeError):
    """The keystone strategy was chosen without keystonemiddleware installed."""


def auth_token_options(settings: Settings) -> dict[str, str]:
    """keystonemiddleware's options from berth's settings (set values only)."""
    options = {
        option: str(getattr(settings, name))
        for name, option in OPTION_NAMES.items()
        if getattr(settings, name)
    }
    if settings.keystone_insecure:
        options["insecure"] = "true"
    if not settings.keystone_service_token_roles_required:
        options["service_token_roles_required"] = "false"
    if settings.keystone_config_file:
        options["oslo_config_project"] = "placement"
        options["oslo_config_file"] = settings.keystone_config_file
    else:
        if "auth_url" not in options:
            raise ValueError(
                "auth_strategy keystone needs keystone_auth_url or keystone_config_file"
            )
        for option, value in FALLBACKS.items():
            options.setdefault(option, value)
        options.setdefault("www_authenticate_uri", options["auth_url"])
    return options


class PublicPathsFirst:
    """WSGI: public paths go straight to berth, the rest through auth_token."""

    def __init__(self, app: WSGIApp, protected: WSGIApp) -> None:
        self.app = app
        self.protected = protected

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Route one request around or through token validation."""
        if environ.get("PATH_INFO", "") in PUBLIC_PATHS:
            return self.app(environ, start_response)
        return self.protected(environ, start_response)


def protect(app: WSGIApp, settings: Settings) -> WSGIApp:
    """``app`` behind keystonemiddleware's auth_token, configured from settings."""
    try:
        from keystonemiddleware import auth_token  # type: ignore[import-untyped]
        from oslo_config import cfg
    except ImportError as exc:
        raise KeystoneNotInstalled(
            "BERTH_AUTH_STRATEGY=keystone needs keystonemiddleware: pip install 'berth[keystone]'"
        ) from exc
    conf: dict[str, Any] = dict(auth_token_options(settings))
    if "oslo_config_project" not in conf:
        # A private option namespace: berth never reads global oslo.config.
        local = cfg.ConfigOpts()
        local([], project="berth", default_config_files=[])
        conf["oslo_config_config"] = local
    conf["log_name"] = "berth.keystone"
    return PublicPathsFirst(app, auth_token.AuthProtocol(app, conf))


def _header_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def credentials_from_headers(req: falcon.Request) -> Credentials | None:
    """The caller auth_token vouched for, or None if it did not."""
    status = req.get_header("x-identity-status")
    if status is not None and status != "Confirmed":
        return None
    user_id = req.get_header("x-user-id") or req.get_header("x-user")
    if not user_id:
        return None
    project_id = req.get_header("x-project-id") or req.get_header("x-tenant-id")
    return Credentials(
        user_id=user_id,
        project_id=project_id or None,
        roles=_header_list(req.get_header("x-roles")),
        system_scope=req.get_header("openstack-system-scope") or None,
    )


class KeystoneCredentials:
    """Falcon middleware: credentials from the headers auth_token set."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """401 unless auth_token confirmed a user; else fill in the credentials."""
        if req.path in PUBLIC_PATHS:
            return
        credentials = credentials_from_headers(req)
        if credentials is None:
            raise HTTPError(401, "", code=None, vary=False)  # type: ignore[arg-type]
        req.context.credentials = credentials
