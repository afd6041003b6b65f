"""How the lab talks to a Placement API: over HTTP, or to berth's WSGI app in process.

Both transports have one method, :meth:`Transport.request`, so every
workload runs unchanged against berth in process, berth over HTTP, or any
Placement-compatible URL (the reference included).  The HTTP transport keeps
one keep-alive connection per thread (``http.client``: the client should
cost as little as possible on a small machine).
"""

from __future__ import annotations

import http.client
import socket
import ssl
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


class _Target:
    """Where a transport sends: the URL's parts, a timeout, per-thread state."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.name = url.rstrip("/")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.https = parsed.scheme == "https"
        self.prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        self.local = threading.local()


class HttpTransport(_Target):
    """A Placement API at a URL; one keep-alive connection per thread, framed by hand.

    The request head is built from bytes prepared once per target; the
    answer is parsed only as far as a client needs it (status, length,
    chunks, ``connection: close``).  :mod:`http.client` costs about twice
    the CPU per request (its header parsing goes through the email package),
    httpx about three times; on a 2-core machine that is CPU the server
    under test does not get.
    """

    def __init__(
        self, url: str, timeout: float = 120.0, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(url, timeout)
        # ``headers`` replace the fixed ones of the same name (another microversion header).
        fixed = {"host": f"{self.host}:{self.port}", **HEADERS, **(headers or {})}
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")

    def _conn(self) -> Connection:
        """This thread's keep-alive connection (opened on first use)."""
        conn: Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = Connection(self.host, self.port, self.timeout, self.https)
        return conn

    def _head(
        self, method: str, path: str, data: bytes | None, extra: dict[str, str] | None
    ) -> bytes:
        """The request line and headers, ready to send."""
        lines = [f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1"), self.fixed]
        if extra:
            lines.append("".join(f"{k}: {v}\r\n" for k, v in extra.items()).encode("latin-1"))
        if data is not None:
            lines.append(b"content-type: application/json\r\n")
        if data is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(b"content-length: %d\r\n" % len(data or b""))
        lines.append(b"\r\n")
        return b"".join(lines)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request; a kept-alive connection the server had closed is reopened once."""
        data = None if body is None else orjson.dumps(body)
        wire = self._head(method, path, data, headers) + (data or b"")
        while True:
            conn = self._conn()
            try:
                return conn.exchange(wire, method)
            except TimeoutError:
                self._drop()
                raise
            except OSError:
                self._drop()
                if not conn.reused or conn.answered:
                    raise
                # A stale keep-alive connection: nothing of this request was answered.

    def _drop(self) -> None:
        """Close and forget this thread's connection."""
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None


class ProtocolError(ConnectionError):
    """The server's answer was not HTTP/1.x as this client reads it."""


class Connection:
    """One socket to the server, and the reading side of it."""

    def __init__(self, host: str, port: int, timeout: float, https: bool) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.used = 0  # requests answered on it
        self.reused = False  # the current request is not the connection's first
        self.answered = False  # some of the current answer arrived

    def exchange(self, wire: bytes, method: str) -> tuple[int, bytes]:
        """Send one request, read its answer: (status, body)."""
        self.reused, self.answered = self.used > 0, False
        self.sock.sendall(wire)
        status, length, chunked, close = self._read_head()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif chunked:
            body = self._read_chunks()
        elif length >= 0:
            body = self.rfile.read(length)
            if len(body) < length:
                raise ProtocolError("the answer ended before its content-length")
        else:
            body, close = self.rfile.read(), True
        self.used += 1
        if close:
            self.close()
        return status, body

    def _read_head(self) -> tuple[int, int, bool, bool]:
        """(status, content-length or -1, chunked, connection: close) of the next answer."""
        line = self.rfile.readline(65537)
        if not line:
            raise ProtocolError("the server closed the connection without an answer")
        self.answered = True
        if not line.startswith(b"HTTP/1.") or len(line) < 12:
            raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
        status, length, chunked = int(line[9:12]), -1, False
        close = line.startswith(b"HTTP/1.0")
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if 100 <= status < 200:
            return self._read_head()
        return status, length, chunked, close

    def _read_chunks(self) -> bytes:
        """A chunked body, trailers skipped."""
        parts = []
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
            if size == 0:
                break
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def close(self) -> None:
        """Close both sides."""
        self.rfile.close()
        self.sock.close()


class StdlibHttpTransport(_Target):
    """The same over :mod:`http.client` (kept for comparing what a client costs)."""

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
