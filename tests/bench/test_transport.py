"""The lab's lean HTTP client: what it sends, how it reads answers, when it reconnects."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from berth.bench.transport import HttpTransport, ProtocolError, StdlibHttpTransport

Answer = Callable[[bytes], bytes | None]  # request head + body -> answer bytes (None: close)


class Scripted:
    """A one-thread HTTP/1.1 server that answers each request with the next scripted bytes."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.seen: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/prefix"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            conn, _ = self.sock.accept()
            self.connections += 1
            with conn:
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        buffer = b""
        while self.answers:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += conn.recv(65536)
            self.seen.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
            answer = self.answers.pop(0)(self.seen[-1])
            if answer is None:
                return
            conn.sendall(answer)


def ok(body: bytes, extra: str = "") -> Answer:
    return lambda _: (
        f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body
    )


@pytest.fixture
def serve() -> Iterator[Callable[[list[Answer]], Scripted]]:
    servers: list[Scripted] = []

    def make(answers: list[Answer]) -> Scripted:
        servers.append(Scripted(answers))
        return servers[-1]

    yield make
    for server in servers:
        server.sock.close()


def test_sends_json_with_the_placement_headers_over_one_connection(serve: Callable) -> None:
    server = serve([ok(b'{"a": 1}'), lambda _: b"HTTP/1.1 204 No Content\r\n\r\n"])
    transport = HttpTransport(server.url)
    assert transport.request("PUT", "/x?y=1", {"k": [1, 2]}) == (200, b'{"a": 1}')
    assert transport.request("DELETE", "/x") == (204, b"")
    assert server.connections == 1
    head, _, body = server.seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /prefix/x?y=1 HTTP/1.1\r\n") and body == b'{"k":[1,2]}'
    for header in (b"openstack-api-version: placement 1.39", b"x-auth-token: admin",
                   b"content-type: application/json", b"content-length: 11"):  # fmt: skip
        assert header in head
    assert b"content-length" not in server.seen[1]


def test_reads_chunked_bodies_and_skips_informational_answers(serve: Callable) -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n4\r\nconf\r\n5;x=y\r\nlicts\r\n0\r\n\r\n"
    )
    server = serve([lambda _: chunked, ok(b"next")])
    transport = HttpTransport(server.url)
    assert transport.request("GET", "/") == (409, b"conflicts")
    assert transport.request("GET", "/") == (200, b"next")
    assert server.connections == 1


def test_connection_close_and_a_stale_connection_reconnect(serve: Callable) -> None:
    server = serve([ok(b"1", "connection: close\r\n"), ok(b"2"), lambda _: None, ok(b"3")])
    transport = HttpTransport(server.url)
    assert transport.request("GET", "/") == (200, b"1")
    assert transport.request("GET", "/") == (200, b"2")  # a new connection: the first closed
    assert transport.request("GET", "/") == (200, b"3")  # the kept-alive one died unanswered
    assert server.connections == 3


def test_a_fresh_connection_closed_unanswered_is_an_error(serve: Callable) -> None:
    server = serve([lambda _: None])
    with pytest.raises(ProtocolError):
        HttpTransport(server.url).request("GET", "/")
    assert issubclass(ProtocolError, ConnectionError)


def test_the_stdlib_transport_answers_alike(serve: Callable) -> None:
    server = serve([ok(b'{"a": 1}')])
    assert StdlibHttpTransport(server.url).request("POST", "/x", {"k": 1}) == (200, b'{"a": 1}')
