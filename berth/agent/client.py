"""The agent's HTTP side: Placement (hosts, inventories, traits, usage) and berth's pull API.

The agent is a client: it speaks HTTP to berth (or any server of the
contract in docs/pull.md) and imports nothing of the server.  Calls that
fail on the network or with a 5xx raise :class:`Unavailable` (the caller
naks the work and retries later); a 4xx raises :class:`Refused` (a bug or a
misconfiguration: logged, the work nak'ed).  The pull API is also a
:class:`PullApi` protocol, so the dispatch tests can run on a real broker
with an in-memory answerer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx
import orjson

from berth.agent.model import Inventory

PLACEMENT_VERSION = "placement 1.39"
SCHEDULER_VERSION = "scheduler 1.2"
CREATE_TRIES = 4  # a busy server's timeouts while --create makes thousands of hosts


class Unavailable(Exception):
    """The server could not be reached or answered 5xx: retry later."""


class Refused(Exception):
    """The server answered 4xx: the call itself is wrong."""


class PullApi(Protocol):
    """The agent's calls of ``/scheduler/pull/...`` (batches in, results out), and usage."""

    async def usages(self, uuid: str) -> dict[str, int]:
        """Placement's usage of one host (re-read after ``full``)."""
        ...

    async def heartbeat(self, agent: str, hosts: Sequence[str]) -> None:
        """POST /scheduler/pull/heartbeat."""
        ...

    async def claims(self, claims: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /scheduler/pull/claims; the results."""
        ...

    async def active(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /scheduler/pull/active; the results."""
        ...

    async def deleted(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /scheduler/pull/deleted; the results."""
        ...


class BerthClient:
    """Placement and the pull API over one pooled async HTTP client."""

    def __init__(self, url: str, token: str = "admin", timeout: float = 30.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"x-auth-token": token, "accept": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        version: str = PLACEMENT_VERSION,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (None when empty)."""
        headers = {"openstack-api-version": version}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["content-type"] = "application/json"
        try:
            resp = await self.http.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"{method} {path}: {exc!r}") from None
        if resp.status_code >= 500:
            raise Unavailable(f"{method} {path}: {resp.status_code} {resp.text[:200]}")
        if resp.status_code >= 400:
            raise Refused(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return orjson.loads(resp.content) if resp.content else None

    # Placement.

    async def root_providers(self, prefix: str) -> list[tuple[str, str]]:
        """(uuid, name) of the root providers whose name starts with ``prefix``, by name."""
        body = await self.call("GET", "/resource_providers")
        found = [
            (rp["uuid"], rp["name"])
            for rp in body["resource_providers"]
            if rp["name"].startswith(prefix)
            and rp.get("root_provider_uuid", rp["uuid"]) == rp["uuid"]
        ]
        return sorted(found, key=lambda pair: pair[1])

    async def inventories(self, uuid: str) -> dict[str, Inventory]:
        """The provider's inventory per resource class."""
        body = await self.call("GET", f"/resource_providers/{uuid}/inventories")
        return {rc: Inventory.from_json(inv) for rc, inv in body["inventories"].items()}

    async def traits(self, uuid: str) -> frozenset[str]:
        """The provider's traits."""
        body = await self.call("GET", f"/resource_providers/{uuid}/traits")
        return frozenset(body["traits"])

    async def usages(self, uuid: str) -> dict[str, int]:
        """The provider's usage per resource class."""
        body = await self.call("GET", f"/resource_providers/{uuid}/usages")
        return {rc: int(n) for rc, n in body["usages"].items()}

    async def read_host(
        self, uuid: str
    ) -> tuple[dict[str, Inventory], frozenset[str], dict[str, int]]:
        """Inventory, traits and usage of one provider, asked at once."""
        inv, traits, used = await asyncio.gather(
            self.inventories(uuid), self.traits(uuid), self.usages(uuid)
        )
        return inv, traits, used

    async def create_host(
        self, name: str, inventories: Mapping[str, Mapping[str, Any]], traits: Sequence[str]
    ) -> str:
        """Create a root provider with ``inventories`` and ``traits``; its uuid.

        A step that timed out may have been done: the next try finds the
        provider by name and sets its inventory and traits again (both
        idempotent) at its current generation.
        """
        for attempt in range(CREATE_TRIES):
            try:
                return await self._create_host(name, inventories, traits, attempt > 0)
            except Unavailable:
                if attempt == CREATE_TRIES - 1:
                    raise
                await asyncio.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    async def _create_host(
        self,
        name: str,
        inventories: Mapping[str, Mapping[str, Any]],
        traits: Sequence[str],
        look_first: bool,
    ) -> str:
        rp = await self.provider_named(name) if look_first else None
        if rp is None:
            rp = await self.call("POST", "/resource_providers", {"name": name})
        uuid: str = rp["uuid"]
        put = await self.call(
            "PUT",
            f"/resource_providers/{uuid}/inventories",
            {"resource_provider_generation": rp["generation"], "inventories": inventories},
        )
        if traits:
            await self.call(
                "PUT",
                f"/resource_providers/{uuid}/traits",
                {
                    "resource_provider_generation": put["resource_provider_generation"],
                    "traits": list(traits),
                },
            )
        return uuid

    async def provider_named(self, name: str) -> dict[str, Any] | None:
        """The provider called ``name`` (None: there is none)."""
        body = await self.call("GET", "/resource_providers", params={"name": name})
        found = body["resource_providers"]
        return dict(found[0]) if found else None

    async def ensure_traits(self, traits: Sequence[str]) -> None:
        """Create the custom traits among ``traits`` (PUT /traits/{name} is idempotent)."""
        for trait in traits:
            if trait.startswith("CUSTOM_"):
                await self.call("PUT", f"/traits/{trait}")

    # The pull API (docs/pull.md, "Agents").

    async def heartbeat(self, agent: str, hosts: Sequence[str]) -> None:
        """POST /scheduler/pull/heartbeat."""
        body = {"agent": agent, "hosts": list(hosts)}
        await self.call("POST", "/scheduler/pull/heartbeat", body, SCHEDULER_VERSION)

    async def claims(self, claims: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /scheduler/pull/claims."""
        body = {"claims": list(claims)}
        answer = await self.call("POST", "/scheduler/pull/claims", body, SCHEDULER_VERSION)
        return list(answer["results"])

    async def active(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /scheduler/pull/active."""
        body = {"instances": list(instances)}
        answer = await self.call("POST", "/scheduler/pull/active", body, SCHEDULER_VERSION)
        return list(answer["results"])

    async def deleted(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """POST /scheduler/pull/deleted."""
        body = {"instances": list(instances)}
        answer = await self.call("POST", "/scheduler/pull/deleted", body, SCHEDULER_VERSION)
        return list(answer["results"])
