"""HTTP errors in Placement's wire format.

Handlers raise :class:`HTTPError` (or let a domain error from
``berth.placement.errors`` escape); :func:`render` turns either into the
body Placement sends::

    {"errors": [{"status", "title", "detail", "code", "request_id"}]}

``detail`` keeps the reference's shape, "<explanation>\\n\\n <message>  ",
because clients and the upstream tests match on substrings of it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

import orjson

from berth.placement import errors as domain

if TYPE_CHECKING:
    import falcon

# The explanation WebOb puts before the message, per status.
EXPLANATIONS = {
    400: "The server could not comply with the request since it is either "
    "malformed or otherwise incorrect.",
    401: "This server could not verify that you are authorized to access the "
    "document you requested. Either you supplied the wrong credentials (e.g., "
    "bad password), or your browser does not understand how to supply the "
    "credentials required.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method {method} is not allowed for this resource. ",
    406: "The resource could not be generated that was acceptable to your "
    "browser (content of type {accept}. ",
    409: "There was a conflict when trying to complete your request.",
    413: "The body of your request was too large for this server.",
    415: "The request media type {content_type} is not supported by this server. ",
    501: "Not implemented.",
    503: "The server is currently unavailable. Please try again at a later time.",
    500: "The server has either erred or is incapable of performing the requested operation.",
}

ERROR_CODE_MIN_VERSION = (1, 23)

DOMAIN_STATUS: dict[type[domain.PlacementError], int] = {
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.InvalidInput: 400,  # berth.qparams.InvalidQuery (a malformed query) too
    domain.NotAuthorized: 403,
    domain.TooLarge: 413,
    domain.Unavailable: 503,
}


class HTTPError(Exception):
    """An error response: status, message and Placement error code."""

    def __init__(
        self,
        status: int,
        message: str = "",
        code: str = domain.DEFAULT_CODE,
        headers: dict[str, str] | None = None,
        vary: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        # The reference omits "vary" on errors raised outside its handlers.
        self.vary = vary


def from_domain(exc: domain.PlacementError) -> HTTPError:
    """Map a domain error to its HTTP error."""
    for kind in type(exc).__mro__:
        status = DOMAIN_STATUS.get(kind)  # type: ignore[call-overload, unused-ignore]
        if status is not None:
            vary = status not in (403, 404)
            return HTTPError(status, exc.message, exc.code, vary=vary)
    return HTTPError(500, exc.message, exc.code)


def bad_request(message: str, code: str = domain.DEFAULT_CODE) -> HTTPError:
    """A 400 with ``message``."""
    return HTTPError(400, message, code)


def not_found(message: str, code: str = domain.DEFAULT_CODE) -> HTTPError:
    """A 404 with ``message``."""
    return HTTPError(404, message, code)


def conflict(message: str, code: str = domain.DEFAULT_CODE) -> HTTPError:
    """A 409 with ``message``."""
    return HTTPError(409, message, code)


def unavailable_error(reason: str, retry_after: int, commit_unknown: bool = False) -> HTTPError:
    """503 for a database that cannot serve now (``reason`` from ``engine.unavailable``).

    A write whose connection was lost during COMMIT (``commit_unknown``) may
    or may not have been applied: the message says so, and that reading the
    resource back (its generation) tells.
    """
    if commit_unknown:
        message = (
            "The database connection was lost while committing this write: it may or may "
            "not have been applied. Read the resource back (its generation tells) before "
            "retrying."
        )
    else:
        message = f"The database is unavailable ({reason}). Retry after {retry_after} seconds."
    return HTTPError(503, message, headers={"Retry-After": str(retry_after)}, vary=False)


def detail_text(status: int, message: str, req: falcon.Request | None = None) -> str:
    """The ``detail`` string: the WebOb explanation, then the message."""
    explanation = EXPLANATIONS.get(status, "")
    if req is not None and "{" in explanation:
        explanation = explanation.format(
            method=req.method,
            accept=req.get_header("accept") or "",
            content_type=req.content_type or "None",
        )
    flat = " ".join(message.split("\n"))
    if status in (405, 406, 415):
        return f"{explanation}\n\n {flat}"
    return f"{explanation}\n\n {flat}  "


def error_body(
    status: int,
    message: str,
    code: str | None,
    request_id: str | None,
    extra: dict[str, str] | None = None,
    req: falcon.Request | None = None,
) -> bytes:
    """Serialise one error in Placement's format."""
    error: dict[str, object] = {
        "status": status,
        "title": HTTPStatus(status).phrase,
        "detail": detail_text(status, message, req),
    }
    if code is not None:
        error["code"] = code
    if request_id:
        error["request_id"] = request_id
    if extra:
        error.update(extra)
    return orjson.dumps({"errors": [error]})


def negotiate_error(accept: str | None, status: int, json_body: bytes) -> tuple[str, bytes]:
    """Pick the error's media type from ``Accept`` as WebOb does.

    JSON unless the client rules it out; then HTML if it takes HTML, else
    plain text.  The text forms carry the same detail.
    """
    from falcon.util.mediatypes import best_match

    if not accept:
        return "application/json", json_body
    best = best_match(["application/json", "text/html", "text/plain"], accept)
    if best in ("application/json", ""):
        return "application/json", json_body
    detail = orjson.loads(json_body)["errors"][0]["detail"]
    title = f"{status} {HTTPStatus(status).phrase}"
    if best == "text/html":
        html = (
            f"<html>\n <head>\n  <title>{title}</title>\n </head>\n"
            f" <body>\n  <h1>{title}</h1>\n  {detail}\n </body>\n</html>"
        )
        return "text/html; charset=UTF-8", html.encode()
    return "text/plain; charset=UTF-8", f"{title}\n\n{detail}".encode()
