"""A tiny stand-in for Keystone's v3 token API, enough for keystonemiddleware.

It answers version discovery, lets the service user log in (``POST
/v3/auth/tokens``) and validates user tokens (``GET /v3/auth/tokens`` with
``X-Subject-Token``) from a fixed table, so berth's keystone strategy can be
tested end to end without a Keystone.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Token:
    """Who a token belongs to: user, project (or system scope) and roles."""

    user_id: str
    roles: list[str]
    project_id: str | None = None
    system: bool = False


@dataclass
class FakeKeystone:
    """The tokens the fake knows, and the URLs it serves."""

    tokens: dict[str, Token]
    url: str = ""
    validations: list[str] = field(default_factory=list)

    def token_body(self, token: Token) -> dict[str, Any]:
        """A v3 token document for ``token``."""
        domain = {"id": "default", "name": "Default"}
        body: dict[str, Any] = {
            "methods": ["password"],
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "issued_at": "2020-01-01T00:00:00.000000Z",
            "user": {"id": token.user_id, "name": token.user_id, "domain": domain},
            "roles": [{"id": f"id-{name}", "name": name} for name in token.roles],
            "catalog": [
                {
                    "type": "identity",
                    "name": "keystone",
                    "id": "identity",
                    "endpoints": [
                        {
                            "id": f"ep-{interface}",
                            "interface": interface,
                            "region": "RegionOne",
                            "region_id": "RegionOne",
                            "url": self.url + "/v3",
                        }
                        for interface in ("public", "internal", "admin")
                    ],
                }
            ],
        }
        if token.system:
            body["system"] = {"all": True}
        else:
            body["project"] = {"id": token.project_id, "name": token.project_id, "domain": domain}
        return {"token": body}

    def version(self) -> dict[str, Any]:
        """The v3 version document."""
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": self.url + "/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }


def _handler(fake: FakeKeystone) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path == "":
                self._send(300, {"versions": {"values": [fake.version()]}})
            elif path == "/v3":
                self._send(200, {"version": fake.version()})
            elif path == "/v3/auth/tokens":
                subject = self.headers.get("X-Subject-Token", "")
                fake.validations.append(subject)
                token = fake.tokens.get(subject)
                if token is None:
                    self._send(404, {"error": {"code": 404, "message": "token not found"}})
                else:
                    self._send(200, fake.token_body(token), {"X-Subject-Token": subject})
            else:
                self._send(404, {"error": {"code": 404, "message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.rstrip("/") == "/v3/auth/tokens":
                service = Token(user_id="placement", roles=["service"], project_id="service")
                self._send(201, fake.token_body(service), {"X-Subject-Token": "service-token"})
            else:
                self._send(404, {"error": {"code": 404, "message": "not found"}})

    return Handler


@contextlib.contextmanager
def running_keystone(tokens: dict[str, Token]) -> Iterator[FakeKeystone]:
    """Serve a fake Keystone on a free loopback port."""
    fake = FakeKeystone(tokens=tokens)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
