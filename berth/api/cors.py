"""CORS, with the semantics of oslo.middleware's CORS filter.

Only active when ``cors_allowed_origin`` is set.  A preflight ``OPTIONS``
request is answered here (200, with the CORS headers when the origin and the
requested method and headers are allowed); other requests from an allowed
origin get ``Access-Control-Allow-Origin`` added to the response.
"""

from __future__ import annotations

from typing import Any

import falcon

from berth.settings import Settings

DEFAULT_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")
SIMPLE_HEADERS = {
    "cache-control",
    "content-language",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
}


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


class CORS:
    """Answer preflights and decorate responses for allowed origins."""

    def __init__(self, settings: Settings) -> None:
        self.origins = set(_split(settings.cors_allowed_origin))
        self.allow_headers = [h.lower() for h in _split(settings.cors_allow_headers)]
        self.expose_headers = _split(settings.cors_expose_headers)
        self.max_age = settings.cors_max_age

    def _allowed_origin(self, req: falcon.Request) -> str | None:
        origin = req.get_header("origin")
        if origin and (origin in self.origins or "*" in self.origins):
            return origin
        return None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Short-circuit preflight requests."""
        if req.method != "OPTIONS" or not req.get_header("origin"):
            return
        req.context.cors_preflight = True
        resp.status = 200
        resp.data = b""
        resp.complete = True
        origin = self._allowed_origin(req)
        method = req.get_header("access-control-request-method")
        if origin is None or method is None or method.upper() not in DEFAULT_METHODS:
            return
        requested = [
            h.lower() for h in _split(req.get_header("access-control-request-headers") or "")
        ]
        permitted = set(self.allow_headers) | SIMPLE_HEADERS
        if any(h not in permitted for h in requested):
            return
        resp.set_header("access-control-allow-origin", origin)
        resp.set_header("access-control-allow-methods", method.upper())
        if requested:
            resp.set_header("access-control-allow-headers", ",".join(requested))
        if self.max_age:
            resp.set_header("access-control-max-age", str(self.max_age))
        resp.set_header("vary", "Origin")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, succeeded: bool
    ) -> None:
        """Add the allow-origin header to actual requests."""
        if getattr(req.context, "cors_preflight", False):
            return
        origin = self._allowed_origin(req)
        if origin is None:
            return
        resp.set_header("access-control-allow-origin", origin)
        if self.expose_headers:
            resp.set_header("access-control-expose-headers", ",".join(self.expose_headers))
