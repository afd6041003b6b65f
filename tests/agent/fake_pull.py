"""An in-memory answerer of the agent's pull calls, for the dispatch tests on a real broker.

It keeps each instance's state and each host's usage as the contract
describes (docs/pull.md) and counts the calls, so a test can check the
agent's batching and its answers to every outcome.  It is not the server:
the end-to-end test runs the real one.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from berth.agent.model import Host


class FakePull:
    """Claims judged against each host's capacity; outcomes can be forced per instance."""

    def __init__(self, hosts: Iterable[Host]) -> None:
        self.capacity = {
            h.uuid: {rc: inv.capacity for rc, inv in h.inventories.items()} for h in hosts
        }
        self.used: dict[str, collections.Counter[str]] = {
            u: collections.Counter() for u in self.capacity
        }
        self.amounts: dict[str, dict[str, int]] = {}
        self.state: dict[str, tuple[str, str | None]] = {}  # instance -> (state, host)
        self.calls: collections.Counter[str] = collections.Counter()
        self.batch_sizes: list[int] = []
        self.group_refuses: dict[str, set[str]] = {}  # instance -> hosts its group refuses
        self.heartbeats: list[tuple[str, int]] = []

    def queue(self, instance: str, amounts: Mapping[str, int]) -> None:
        """The instance is queued (as the server's enqueue would leave it)."""
        self.amounts[instance] = dict(amounts)
        self.state[instance] = ("queued", None)

    def in_state(self, state: str) -> list[str]:
        return [i for i, (s, _) in self.state.items() if s == state]

    async def heartbeat(self, agent: str, hosts: Sequence[str]) -> None:
        self.calls["heartbeat"] += 1
        self.heartbeats.append((agent, len(hosts)))

    async def usages(self, uuid: str) -> dict[str, int]:
        self.calls["usages"] += 1
        return dict(self.used[uuid])

    async def claims(self, claims: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        self.calls["claims"] += 1
        self.batch_sizes.append(len(claims))
        return [self._claim(c["instance"], c["host"]) for c in claims]

    def _claim(self, instance: str, host: str) -> dict[str, Any]:
        if self.state.get(instance, ("gone", None))[0] != "queued":
            return {"instance": instance, "outcome": "taken", "reason": "not queued"}
        if host in self.group_refuses.get(instance, ()):
            return {"instance": instance, "outcome": "group", "reason": "anti-affinity"}
        amounts = self.amounts[instance]
        used, cap = self.used[host], self.capacity[host]
        if any(used[rc] + n > cap.get(rc, 0) for rc, n in amounts.items()):
            return {"instance": instance, "outcome": "full", "reason": "no room"}
        used.update(amounts)
        self.state[instance] = ("claimed", host)
        return {"instance": instance, "outcome": "claimed", "reason": None}

    async def active(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        self.calls["active"] += 1
        out = []
        for item in instances:
            instance, host = item["instance"], item["host"]
            ok = self.state.get(instance) == ("claimed", host)
            if ok:
                self.state[instance] = ("active", host)
            out.append({"instance": instance, "outcome": "active" if ok else "taken"})
        return out

    async def deleted(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        self.calls["deleted"] += 1
        out = []
        for item in instances:
            instance, host = item["instance"], item["host"]
            ok = self.state.get(instance) in (("active", host), ("deleting", host))
            if ok:
                self.used[host].subtract(self.amounts[instance])
                self.state[instance] = ("deleted", host)
            out.append({"instance": instance, "outcome": "deleted" if ok else "taken"})
        return out
