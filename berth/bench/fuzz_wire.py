"""How ``berth bench fuzz`` sends: a keep-alive connection per thread, or bytes framed by hand.

An answer is its status code as a string, ``closed`` (the server closed
the connection without a status line), ``timeout`` (no answer within the
timeout: a hang, reported) or ``reset`` (we reset the connection ourselves).
Framings are what a client library would not send: chunked bodies, a
Content-Length shorter or longer than the body (the longer one followed by
closing our side, so the server sees the end), a length declared over the
limit, a body over it, and a body cut short by a reset (what the server does
then shows in its log).
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
import urllib.parse
from typing import Protocol

CHUNK = 64 * 1024
RESET_AFTER = 0.02  # seconds between sending part of a body and resetting the connection
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
_LENGTH = re.compile(rb"(?im)^content-length: *(\d+)")


class Sendable(Protocol):
    """What the wire needs of a request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    framing: str


class Wire:
    """A Placement API at ``url``."""

    def __init__(self, url: str, timeout: float, body_limit: int) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        self.body_limit = body_limit
        self.local = threading.local()

    def send(self, req: Sendable) -> tuple[str, bytes]:
        """The answer's status (or ``closed``/``timeout``) and body."""
        if req.framing:
            return self._framed(req)
        return self._plain(req)

    def _plain(self, req: Sendable) -> tuple[str, bytes]:
        """Through http.client; a kept-alive connection the server dropped is reopened once."""
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(req.method, self.prefix + req.path, req.body, req.headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self._drop()
                return str(resp.status), data
            except TimeoutError:
                self._drop()
                return "timeout", b""
            except (http.client.HTTPException, OSError):
                self._drop()
                if attempt == 2:
                    return "closed", b""
        raise AssertionError("unreachable")

    def _conn(self) -> http.client.HTTPConnection:
        """This thread's kept-alive connection (opened on first use)."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        return conn

    def _drop(self) -> None:
        """Close this thread's connection; the next request opens another."""
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def _framed(self, req: Sendable) -> tuple[str, bytes]:
        """Head and body as ``req.framing`` says, on a fresh socket."""
        body = req.body or b""
        head, payload, half_close = self._framing(req.framing, body)
        lines = [f"{req.method} {self.prefix}{req.path} HTTP/1.1", f"host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in {**req.headers, **head}.items()]
        raw_head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if req.framing == "reset":
            return self._reset(raw_head + payload)
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            try:
                sock.sendall(raw_head)
                for i in range(0, len(payload), CHUNK):
                    sock.sendall(payload[i : i + CHUNK])
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except TimeoutError:
                return "timeout", b""
            except OSError:
                pass  # the server answered early (413) and closed: read what it said
            return _answer(sock)

    def _reset(self, data: bytes) -> tuple[str, bytes]:
        """Send a request short of its body, then reset the connection: ``reset``, no answer."""
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            sock.sendall(data)
            time.sleep(RESET_AFTER)  # the server is reading the body when the reset comes
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return "reset", b""

    def _framing(self, framing: str, body: bytes) -> tuple[dict[str, str], bytes, bool]:
        """Extra headers, the bytes after the head, and whether to close our side after."""
        close = {"connection": "close"}
        if framing in ("chunked", "chunked_over"):
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + CHUNK]), body[i : i + CHUNK])
                for i in range(0, len(body), CHUNK)
            )
            return {**close, "transfer-encoding": "chunked"}, chunks + b"0\r\n\r\n", False
        if framing == "short_length":
            return {**close, "content-length": str(len(body) // 2)}, body, False
        if framing in ("long_length", "reset"):
            return {**close, "content-length": str(len(body) + 100)}, body, True
        if framing == "declared_over":
            return {**close, "content-length": str(self.body_limit + 1)}, body, True
        return {**close, "content-length": str(len(body))}, body, False


def _answer(sock: socket.socket) -> tuple[str, bytes]:
    """The first response on ``sock``: its status and body (``closed``, ``timeout``)."""
    data = b""
    try:
        while True:
            part = sock.recv(CHUNK)
            if not part:
                break
            data += part
            head, sep, rest = data.partition(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if sep and length and len(rest) >= int(length.group(1)):
                break
    except TimeoutError:
        if not data:
            return "timeout", b""
    except OSError:
        pass  # reset after the answer: keep what came
    status = _STATUS.match(data)
    if status is None:
        return "closed", b""
    return status.group(1).decode(), data.partition(b"\r\n\r\n")[2]
