"""An in-memory host-state server for the reporter's tests (a :class:`Wire`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping


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

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        status, answer = self.handle(method, path.split("?")[0], body)
        return status, json.dumps(answer).encode()

    async def close(self) -> None:
        pass

    def handle(self, method: str, path: str, content: bytes | None) -> tuple[int, object]:
        parts = path.strip("/").split("/")
        if parts == ["scheduler", "hosts"]:
            self.reads += 1
            return 200, {"hosts": self._hosts()}
        uuid, namespace = parts[2], parts[4]
        key = (uuid, namespace)
        if uuid in self.missing:
            return 404, {"errors": [{"code": "placement.undefined_code"}]}
        if method == "GET":
            self.reads += 1
            if key not in self.generations:
                return 404, {"errors": [{"status": 404}]}
            return 200, {"generation": self.generations[key]}
        body = json.loads(content or b"{}")
        if self.conflicts or body["generation"] != self.generations.get(key, 0):
            self.conflicts = max(0, self.conflicts - 1)
            self.generations[key] = self.generations.get(key, 0) + 1  # the other writer's
            return 409, {"errors": [{"status": 409}]}
        self.patches += 1
        self.generations[key] = body["generation"] + 1
        self.states.setdefault(key, {}).update(body["state"])
        return 200, {"generation": self.generations[key]}

    def _hosts(self) -> dict[str, object]:
        return {
            uuid: {"namespaces": {ns: {"generation": gen}}}
            for (uuid, ns), gen in self.generations.items()
        }
