"""An in-memory host-state server for the reporter's tests (an httpx mock transport)."""

from __future__ import annotations

import dataclasses
import json

import httpx


@dataclasses.dataclass
class FakeStateServer:
    """Answers GET /scheduler/hosts, GET and PATCH .../state/{namespace} as berth does."""

    generations: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    states: dict[tuple[str, str], dict[str, object]] = dataclasses.field(default_factory=dict)
    down: bool = False  # every request fails to connect
    conflicts: int = 0  # the next this-many PATCHes answer 409 (another writer came first)
    missing: set[str] = dataclasses.field(default_factory=set)  # uuids of no provider: 404
    patches: int = 0
    reads: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        parts = request.url.path.strip("/").split("/")
        if parts == ["scheduler", "hosts"]:
            self.reads += 1
            return httpx.Response(200, json={"hosts": self._hosts()})
        uuid, namespace = parts[2], parts[4]
        key = (uuid, namespace)
        if uuid in self.missing:
            return httpx.Response(404, json={"errors": [{"code": "placement.undefined_code"}]})
        if request.method == "GET":
            self.reads += 1
            if key not in self.generations:
                return httpx.Response(404, json={"errors": [{"status": 404}]})
            return httpx.Response(200, json={"generation": self.generations[key]})
        body = json.loads(request.content)
        if self.conflicts or body["generation"] != self.generations.get(key, 0):
            self.conflicts = max(0, self.conflicts - 1)
            self.generations[key] = self.generations.get(key, 0) + 1  # the other writer's
            return httpx.Response(409, json={"errors": [{"status": 409}]})
        self.patches += 1
        self.generations[key] = body["generation"] + 1
        self.states.setdefault(key, {}).update(body["state"])
        return httpx.Response(200, json={"generation": self.generations[key]})

    def _hosts(self) -> dict[str, object]:
        return {
            uuid: {"namespaces": {ns: {"generation": gen}}}
            for (uuid, ns), gen in self.generations.items()
        }
