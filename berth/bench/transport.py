"""How the lab talks to a Placement API: over HTTP, or to berth's WSGI app in process.

Both transports have one method, :meth:`Transport.request`, so every
workload runs unchanged against berth in process, berth over HTTP, or any
Placement-compatible URL (the reference included).  The HTTP transport keeps
one keep-alive connection per thread (``http.client``: the client should
cost as little as possible on a small machine).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from typing import Any, Protocol

import orjson

MICROVERSION = "placement 1.39"
HEADERS = {
    "x-auth-token": "admin",
    "openstack-api-version": MICROVERSION,
    "accept": "application/json",
}


class Transport(Protocol):
    """Sends one request; answers (status, body bytes)."""

    name: str

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """``path`` includes the query string; ``body`` is sent as JSON."""
        ...


def _headers(body: Any, extra: dict[str, str] | None) -> tuple[dict[str, str], bytes | None]:
    """The request headers and the JSON body bytes."""
    headers = dict(HEADERS)
    headers.update(extra or {})
    if body is None:
        return headers, None
    headers["content-type"] = "application/json"
    return headers, orjson.dumps(body)


class HttpTransport:
    """A Placement API at a URL; one keep-alive connection per thread."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.name = url.rstrip("/")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.https = parsed.scheme == "https"
        self.prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection (opened on first use)."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = kind(self.host, self.port, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request; a dropped keep-alive connection is reopened once."""
        sent_headers, data = _headers(body, headers)
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, self.prefix + path, body=data, headers=sent_headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class InProcessTransport:
    """berth's WSGI app called directly: no sockets, no server, no workers."""

    def __init__(self, app: Any, name: str = "inproc") -> None:
        self.name = name
        self.app = app

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request through the WSGI callable."""
        from falcon.testing import create_environ

        sent_headers, data = _headers(body, headers)
        route, _, query = path.partition("?")
        environ = create_environ(
            route, query, headers=sent_headers, body=data or b"", method=method, host="localhost"
        )
        status: list[str] = []

        def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
            """Keep the status line of the WSGI answer."""
            status.append(line)

        chunks = self.app(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return int(status[0].split(" ", 1)[0]), content


def in_process(database_url: str, **overrides: Any) -> InProcessTransport:
    """berth's app over ``database_url`` in this process (schema upgraded first)."""
    from berth import settings as settings_mod
    from berth.api.app import create_app
    from berth.db import migrate
    from berth.logging import configure
    from berth.placement import catalog
    from berth.services import Services

    settings = settings_mod.load(
        database_url=database_url, log_requests=False, log_level="ERROR", **overrides
    )
    configure(settings)  # lost races are routine here: keep the console for results
    services = Services.from_settings(settings)
    migrate.upgrade(services.db)
    catalog.sync(services.db)
    return InProcessTransport(create_app(settings, services))


def json_of(status: int, body: bytes, what: str) -> Any:
    """The decoded body of a 2xx answer; RuntimeError with the body otherwise."""
    if not 200 <= status < 300:
        raise RuntimeError(f"{what}: HTTP {status}: {body[:300]!r}")
    return orjson.loads(body) if body else None
