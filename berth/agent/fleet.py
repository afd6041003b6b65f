"""The agent's hosts and queues, and which hosts can take which queue's work right now.

Eligibility is kept incrementally: when a queue appears, every host is
checked once; when a host's usage changes (a dispatch, a refusal, a claim
answered, a teardown, a usage re-read), that host is checked against every
queue.  Whoever runs the fetch loops is told (``on_change``) when a queue
gains its first eligible host or loses its last.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from berth.agent.choice import EligibleHosts
from berth.agent.eligibility import instances_that_fit, refusal
from berth.agent.model import Host, Queue


class Fleet:
    """The simulated hosts of one agent process and the queues they might serve."""

    def __init__(
        self, hosts: Iterable[Host], choice: str = "pack", seed: int | None = None
    ) -> None:
        self.hosts: list[Host] = list(hosts)
        self.by_uuid: dict[str, Host] = {h.uuid: h for h in self.hosts}
        self.choice = choice
        self.rng = random.Random(seed)
        self.queues: dict[str, Queue] = {}
        self.eligible: dict[str, EligibleHosts] = {}
        self.on_change: Callable[[], None] = lambda: None

    def set_queue(self, queue: Queue) -> None:
        """Add or replace a queue and find its eligible hosts."""
        before = self.serving()
        eligible = EligibleHosts(self.choice, self.rng)
        for host in self.hosts:
            eligible.update(
                host, refusal(host, queue.resources, queue.required, queue.forbidden) is None
            )
        self.queues[queue.name] = queue
        self.eligible[queue.name] = eligible
        self._changed(before)

    def remove_queue(self, name: str) -> None:
        """Forget a queue (deleted from the bucket)."""
        before = self.serving()
        self.queues.pop(name, None)
        self.eligible.pop(name, None)
        self._changed(before)

    def serving(self) -> frozenset[str]:
        """The queues with at least one eligible host: those to fetch from."""
        return frozenset(name for name, hosts in self.eligible.items() if len(hosts))

    def has_eligible(self, queue: str) -> bool:
        """Whether some host can take one instance of ``queue`` now."""
        hosts = self.eligible.get(queue)
        return hosts is not None and len(hosts) > 0

    def eligible_count(self, queue: str) -> int:
        """How many hosts can take one instance of ``queue`` now."""
        hosts = self.eligible.get(queue)
        return 0 if hosts is None else len(hosts)

    def room(self, queue: str, limit: int) -> int:
        """How many instances of ``queue`` the eligible hosts can hold, counted up to ``limit``
        (the hosts are looked at only until then: a fetch's size costs O(limit))."""
        hosts = self.eligible.get(queue)
        if hosts is None:
            return 0
        resources = self.queues[queue].resources
        total = 0
        for host in hosts.members.values():
            total += instances_that_fit(host, resources, limit)
            if total >= limit:
                return limit
        return total

    def best(self, queue: str, exclude: Iterable[int] = ()) -> Host | None:
        """The host the choice prefers for ``queue`` (not one of ``exclude``)."""
        hosts = self.eligible.get(queue)
        return None if hosts is None else hosts.best(exclude)

    def reevaluate(self, host: Host) -> None:
        """Check ``host`` against every queue again (its usage changed)."""
        flipped = False  # a queue gained its first eligible host or lost its last
        for name, queue in self.queues.items():
            ok = refusal(host, queue.resources, queue.required, queue.forbidden) is None
            hosts = self.eligible[name]
            before = len(hosts)
            hosts.update(host, ok)
            flipped = flipped or (before == 0) != (len(hosts) == 0)
        if flipped:
            self.on_change()

    def eligible_hosts(self) -> int:
        """How many hosts can take at least one queue's instance now."""
        indices: set[int] = set()
        for hosts in self.eligible.values():
            indices.update(hosts.members)
        return len(indices)

    def refusals(self, queue: Queue) -> Counter[str]:
        """Why hosts cannot take ``queue`` now, counted (for logs and ``--stats-every``)."""
        return Counter(
            reason
            for host in self.hosts
            if (reason := refusal(host, queue.resources, queue.required, queue.forbidden))
        )

    # Usage bookkeeping: every change of a host's usage goes through here.

    def reserve(self, host: Host, instance: str, amounts: Mapping[str, int]) -> None:
        """Hold ``amounts`` on ``host`` for ``instance`` while its claim is in flight."""
        host.pending[instance] = dict(amounts)
        host.add(amounts)
        self.reevaluate(host)

    def claimed(self, host: Host, instance: str) -> None:
        """The claim went through: the amounts are the host's (and in Placement)."""
        amounts = host.pending.pop(instance, None)
        if amounts is not None:
            host.instances[instance] = amounts

    def release(self, host: Host, instance: str) -> bool:
        """Give back what ``instance`` held on ``host`` (pending or claimed); False if nothing."""
        amounts = host.pending.pop(instance, None) or host.instances.pop(instance, None)
        if amounts is None:
            return False
        host.add(amounts, sign=-1)
        self.reevaluate(host)
        return True

    def set_usage(self, host: Host, usages: Mapping[str, int]) -> None:
        """Placement's usage of ``host`` (re-read): plus the claims still in flight here."""
        host.used = dict(usages)
        for amounts in host.pending.values():
            for rc, amount in amounts.items():
                host.used[rc] = host.used.get(rc, 0) + amount
        host.version += 1
        self.reevaluate(host)

    def _changed(self, before: frozenset[str]) -> None:
        if self.serving() != before:
            self.on_change()
