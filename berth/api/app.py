"""Build the Falcon WSGI application."""

from __future__ import annotations

from typing import Any, cast

import falcon
import structlog
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from berth.api import keystone, microversion
from berth.api.context import RequestContext
from berth.api.cors import CORS
from berth.api.errors import (
    ERROR_CODE_MIN_VERSION,
    HTTPError,
    error_body,
    from_domain,
    negotiate_error,
    unavailable_error,
)
from berth.api.middleware import (
    AdminToken,
    ContentChecks,
    Metrics,
    Microversion,
    NoAuth2,
    RequestSetup,
)
from berth.api.requestlog import RequestLog
from berth.api.routes import ROUTES, Route
from berth.db.engine import CommitUnknown, is_transient, unavailable
from berth.placement.errors import CONCURRENT_UPDATE, PlacementError
from berth.services import Services
from berth.settings import Settings

log = structlog.get_logger("berth.api")

AUTH = {
    "noauth2": NoAuth2,
    "admin_token": AdminToken,
    "keystone": keystone.KeystoneCredentials,
}


def _render(req: falcon.Request, resp: falcon.Response, err: HTTPError) -> None:
    context = cast(RequestContext, req.context)
    version = getattr(context, "version", None)
    code: str | None = None
    if version is not None and version.matches(ERROR_CODE_MIN_VERSION):
        code = err.code or "placement.undefined_code"
    extra = None
    if err.status == 406 and version is None:
        extra = {
            "max_version": microversion.max_version_string(),
            "min_version": microversion.min_version_string(),
        }
    if not err.vary:
        context.vary = False
    resp.status = err.status
    body = error_body(err.status, err.message, code, context.request_id, extra, req)
    resp.content_type, resp.data = negotiate_error(req.get_header("accept"), err.status, body)
    for name, value in err.headers.items():
        resp.set_header(name, value)


def _on_http_error(req: falcon.Request, resp: falcon.Response, ex: HTTPError, params: Any) -> None:
    _render(req, resp, ex)


def _on_domain_error(
    req: falcon.Request, resp: falcon.Response, ex: PlacementError, params: Any
) -> None:
    _render(req, resp, from_domain(ex))


def _on_falcon_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: Any
) -> None:
    status = int(str(ex.status).split()[0]) if isinstance(ex.status, str) else int(ex.status)
    message = ex.description or ""
    if status == 400 and not message:
        message = ex.title or ""
    _render(req, resp, HTTPError(status, message, vary=False))


class DatabaseErrors:
    """Database errors: a lost race is 409, an unavailable database 503 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after

    def __call__(
        self, req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any
    ) -> None:
        reason = unavailable(ex)
        if reason is not None:
            log.warning(
                "database unavailable",
                reason=reason,
                error=str(getattr(ex, "orig", None) or ex),
                request_id=getattr(req.context, "request_id", None),
            )
            error = unavailable_error(reason, self.retry_after, isinstance(ex, CommitUnknown))
            _render(req, resp, error)
            return
        if isinstance(ex, DBAPIError) and is_transient(ex):
            # A deadlock or Galera certification failure did nothing: the client may retry.
            log.warning("transient database error", error=str(ex.orig))
            message = "Another thread concurrently updated the data. Please retry your update"
            _render(req, resp, HTTPError(409, message, CONCURRENT_UPDATE))
            return
        if isinstance(ex, DataError):
            _on_refused_data(req, resp, ex)
            return
        _on_unexpected(req, resp, ex, params)


def _on_refused_data(req: falcon.Request, resp: falcon.Response, ex: DataError) -> None:
    """The database refused a value (out of range, NUL in text): the request's data, a 400."""
    reason = str(ex.orig).strip().splitlines()[0] if str(ex.orig).strip() else "invalid value"
    log.warning("database refused the data", error=reason)
    _render(req, resp, HTTPError(400, f"The database refused a value of the request: {reason}"))


def _on_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    log.exception("unexpected error", request_id=getattr(req.context, "request_id", None))
    _render(req, resp, HTTPError(500, "An unexpected error occurred.", vary=False))


class PlacementRequest(falcon.Request):
    """A Falcon request whose ``context`` is a :class:`RequestContext`."""

    context_type = RequestContext


def create_app(settings: Settings, services: Services | None = None) -> keystone.WSGIApp:
    """The Placement API as a WSGI application."""
    services = services or Services.from_settings(settings)
    # The request log goes first so that its response hook runs last and
    # sees the final status of every request, errors included.
    middleware: list[Any] = [RequestLog()] if settings.log_requests else []
    middleware += [Metrics(), RequestSetup(services)]
    if settings.cors_allowed_origin:
        middleware.append(CORS(settings))
    auth = AUTH[settings.auth_strategy]()
    middleware += [auth, Microversion(), ContentChecks(settings.max_request_body_bytes)]
    app = falcon.App(
        request_type=PlacementRequest,
        middleware=middleware,
        cors_enable=False,
    )
    app.req_options.strip_url_path_trailing_slash = False
    app.req_options.auto_parse_qs_csv = False
    app.req_options.keep_blank_qs_values = True
    # Only responses with a body name a content type (the reference sends
    # none on 201/204 without a body).
    app.resp_options.default_media_type = None  # type: ignore[assignment]
    for template, handlers in ROUTES.items():
        app.add_route(template, Route(handlers))
    app.add_error_handler(Exception, _on_unexpected)
    database_errors = DatabaseErrors(settings.database_retry_after)
    for kind in (DBAPIError, PoolTimeout, CommitUnknown):
        app.add_error_handler(kind, database_errors)
    app.add_error_handler(falcon.HTTPError, _on_falcon_error)
    app.add_error_handler(PlacementError, _on_domain_error)
    app.add_error_handler(HTTPError, _on_http_error)
    if settings.auth_strategy == "keystone":
        # Tokens are validated outside Falcon, by keystonemiddleware.
        return keystone.protect(app, settings)
    return app
