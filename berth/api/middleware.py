"""Falcon middleware: request ids, authentication, microversions, headers."""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import falcon

from berth import metrics
from berth.api import body as request_body
from berth.api import microversion, util
from berth.api.context import Credentials, RequestContext
from berth.api.errors import HTTPError
from berth.services import Services

REQUEST_ID_HEADER = "x-openstack-request-id"


class Metrics:
    """Count requests and time them, by route template, method and status (bounded labels)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Note when the request arrived."""
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, succeeded: bool
    ) -> None:
        """Record the request in the Prometheus metrics."""
        route = req.uri_template or "unmatched"
        method = metrics.method_label(req.method)
        status = str(resp.status).split()[0]
        metrics.REQUESTS.labels(route, method, status).inc()
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        metrics.LATENCY.labels(route, method).observe(elapsed)


class RequestSetup:
    """Give each request its context and id; add the common response headers."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create the context before anything can fail."""
        context = req.context
        context.request_id = f"req-{uuid.uuid4()}"
        context.credentials = Credentials()
        context.services = self.services
        context.vary = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, succeeded: bool
    ) -> None:
        """Echo the request id and the microversion on every response; drop an unread body."""
        context = cast(RequestContext, req.context)
        resp.set_header(REQUEST_ID_HEADER, context.request_id)
        location = resp.get_header("location")
        if location and location.startswith("/"):
            # Like the reference (WebOb), send an absolute Location.
            resp.set_header("location", f"{req.scheme}://{req.netloc}{location}")
        version = getattr(context, "version", None)
        if version is not None:
            resp.set_header(microversion.HEADER, f"{microversion.SERVICE_TYPE} {version}")
            if getattr(context, "vary", True):
                resp.set_header("vary", microversion.HEADER)
        util.finish_body(req, self.services.settings.max_request_body_bytes)


PUBLIC_PATHS = frozenset({"/", "", "/healthcheck", "/healthcheck/ready", "/metrics"})


def _is_root(req: falcon.Request) -> bool:
    return req.path in PUBLIC_PATHS


class NoAuth2:
    """The reference's noauth2: a token names the user (and project)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Fill in credentials from the token and the client's headers."""
        if _is_root(req):
            return
        token = req.get_header("x-auth-token")
        if token is None:
            raise HTTPError(401, "", code=None, vary=False)  # type: ignore[arg-type]
        user_id, _, project_id = token.partition(":")
        project_id = project_id or user_id
        roles_header = req.get_header("x-roles")
        if roles_header is not None:
            roles = [r.strip() for r in roles_header.split(",") if r.strip()]
        elif user_id == "admin":
            roles = ["admin"]
        else:
            roles = []
        system_scope = req.get_header("openstack-system-scope") or None
        explicit_project = req.get_header("x-project-id")
        if explicit_project:
            project_id = explicit_project
        elif system_scope:
            project_id = ""
        req.context.credentials = Credentials(
            user_id=user_id,
            project_id=project_id or None,
            roles=roles,
            system_scope=system_scope,
        )


class AdminToken:
    """Development mode: any token is an admin; no token is 401."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every caller with a token is admin in project 'admin'."""
        if _is_root(req):
            return
        if req.get_header("x-auth-token") is None:
            raise HTTPError(401, "", code=None, vary=False)  # type: ignore[arg-type]
        req.context.credentials = Credentials(
            user_id="admin", project_id="admin", roles=["admin", "member", "reader"]
        )


class Microversion:
    """Parse ``OpenStack-API-Version``; 406 or 400 when it cannot be served."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Store the requested version in the context."""
        try:
            req.context.version = microversion.parse_header(req.get_header(microversion.HEADER))
        except ValueError as exc:
            raise HTTPError(
                406,
                f"Invalid microversion: {exc}",
                code=None,  # type: ignore[arg-type]
            ) from None
        except TypeError as exc:
            raise HTTPError(400, f"Invalid microversion: {exc}", code=None) from None  # type: ignore[arg-type]


class ContentChecks:
    """No NUL in the path or query; a body needs a content type and a length within the limit."""

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Reject bodies without a content type, as the reference does, and declared too large."""
        if "\x00" in req.path or "%00" in req.query_string:
            # No database stores a NUL in text (PostgreSQL refuses it outright).
            raise HTTPError(400, "The path and the query string may not contain NUL (%00).")
        length = req.get_header("content-length")
        if not length:
            return
        try:
            declared = int(length)
        except ValueError:
            raise HTTPError(400, "content-length header must be an integer") from None
        if declared > self.max_body_bytes:
            raise request_body.too_large(self.max_body_bytes)
        if declared > 0 and not req.get_header("content-type"):
            raise HTTPError(400, "content-type header required when content-length > 0")
