"""The reporter's HTTP side: PATCH one namespace of a host's state, keeping its generation.

One aiohttp session, one pool of keep-alive connections, for every host of the
process (:class:`SessionWire`; a :class:`Wire`, so the tests can answer in
memory).  A reporter owns its namespace, so it keeps the generation each answer
gives it and reads only when it has none or a 409 says another
writer came in between (docs/scheduler.md, "Generations").  Network errors and
5xx raise :class:`Unavailable` (back off, try later); other 4xx :class:`Refused`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import orjson

SCHEDULER_VERSION = "scheduler 1.3"
PLACEMENT_VERSION = "placement 1.39"
CONFLICT_TRIES = 3  # a 409 means another writer of our namespace: re-read and patch again


class Unavailable(Exception):
    """The server could not be reached or answered 5xx: retry later."""


class Refused(Exception):
    """The server answered 4xx (other than a 409 we could resolve): the call is wrong."""


class Wire(Protocol):
    """Sends one request: (status, body); OSError when the server cannot be reached."""

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """One request and its answer."""
        ...

    async def close(self) -> None:
        """Let the connections go."""
        ...


class SessionWire:
    """A :class:`Wire` over one ``aiohttp.ClientSession``: at most ``connections``
    keep-alive connections to the server of ``url`` (made at the first request, in the loop)."""

    def __init__(
        self, url: str, headers: Mapping[str, str], connections: int, timeout: float
    ) -> None:
        self.base = url.rstrip("/")
        self.headers = dict(headers)
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """(status, body) of one request; OSError when the server cannot be reached."""
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30)
            self.session = aiohttp.ClientSession(
                connector=connector, headers=self.headers, timeout=self.timeout
            )
        for tries_left in (1, 0):
            try:
                async with self.session.request(
                    method, self.base + path, data=body, headers=headers
                ) as response:
                    return response.status, await response.read()
            except aiohttp.ServerDisconnectedError as exc:
                # A kept-alive connection the server had closed: once more, on a new one (a
                # PATCH it did apply then answers 409, which re-reads the generation).
                if not tries_left:
                    raise OSError(f"{method} {path}: {exc!r}") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise OSError(f"{method} {path}: {exc!r}") from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the session and its connections."""
        if self.session is not None:
            await self.session.close()
            self.session = None


class StateClient:
    """Writes of host state over one connection pool."""

    def __init__(
        self,
        url: str,
        token: str = "admin",
        timeout: float = 10.0,
        connections: int = 32,
        wire: Wire | None = None,
    ) -> None:
        headers = {"x-auth-token": token, "accept": "application/json"}
        self.wire = wire or SessionWire(url, headers, connections, timeout)
        self.generations: dict[tuple[str, str], int] = {}

    async def close(self) -> None:
        """Close the connection pool."""
        await self.wire.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        version: str = SCHEDULER_VERSION,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request: (status, decoded JSON or None); Unavailable on the network or a 5xx."""
        headers = {"openstack-api-version": version}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["content-type"] = "application/json"
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        try:
            status, answer = await self.wire.request(method, path, content, headers)
        except OSError as exc:
            raise Unavailable(f"{method} {path}: {exc}") from None
        if status >= 500:
            raise Unavailable(f"{method} {path}: {status} {answer[:200]!r}")
        try:
            return status, orjson.loads(answer) if answer else None
        except orjson.JSONDecodeError:
            raise Unavailable(f"{method} {path}: {status}, not JSON: {answer[:200]!r}") from None

    async def read_generation(self, uuid: str, namespace: str) -> int:
        """The namespace's generation now (0: it holds nothing, or the host has none)."""
        status, body = await self.call("GET", f"/scheduler/hosts/{uuid}/state/{namespace}")
        if status == 404:
            return 0  # a missing provider is then refused by the PATCH, with its reason
        if status >= 400:
            raise Refused(f"GET state/{namespace} of {uuid}: {status} {body}")
        return int(body["generation"])

    async def prime(self, namespace: str, uuids: list[str]) -> None:
        """Learn the generations of ``namespace`` of all ``uuids`` in one read (0 for a host
        without it), so that the first sends need no read each."""
        status, body = await self.call("GET", "/scheduler/hosts", params={"namespace": namespace})
        if status >= 400:
            raise Refused(f"GET /scheduler/hosts: {status} {body}")
        hosts = body["hosts"]
        for uuid in uuids:
            entry = hosts.get(uuid, {}).get("namespaces", {}).get(namespace)
            self.generations[(uuid, namespace)] = int(entry["generation"]) if entry else 0

    async def patch(self, uuid: str, namespace: str, state: Mapping[str, Any]) -> int:
        """Merge-patch ``state`` into the host's namespace; the new generation."""
        key = (uuid, namespace)
        path = f"/scheduler/hosts/{uuid}/state/{namespace}"
        for _ in range(CONFLICT_TRIES):
            generation = self.generations.get(key)
            if generation is None:
                generation = await self.read_generation(uuid, namespace)
            status, body = await self.call(
                "PATCH", path, {"generation": generation, "state": dict(state)}
            )
            if status == 409:
                self.generations.pop(key, None)
                continue
            if status >= 400:
                self.generations.pop(key, None)
                raise Refused(f"PATCH state/{namespace} of {uuid}: {status} {body}")
            self.generations[key] = int(body["generation"])
            return self.generations[key]
        raise Refused(f"PATCH state/{namespace} of {uuid}: 409 {CONFLICT_TRIES} times")

    async def providers(self, prefix: str | None, count: int) -> list[str]:
        """Uuids of the first ``count`` root providers (by name), whose name starts with
        ``prefix`` if given."""
        status, body = await self.call("GET", "/resource_providers", version=PLACEMENT_VERSION)
        if status >= 400:
            raise Refused(f"GET /resource_providers: {status} {body}")
        found = sorted(
            (rp["name"], rp["uuid"])
            for rp in body["resource_providers"]
            if (prefix is None or rp["name"].startswith(prefix))
            and rp.get("root_provider_uuid", rp["uuid"]) == rp["uuid"]
        )
        return [uuid for _, uuid in found[:count]]
