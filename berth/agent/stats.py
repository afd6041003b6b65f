"""The agent's counters, and the one-line summary ``--stats-every`` prints."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Stats:
    """What the agent did since it started (counts of instances or messages)."""

    fetched: int = 0  # work messages fetched
    placed: int = 0  # confirmed active and acked
    claimed: int = 0  # claims answered ``claimed``
    full: int = 0  # claims answered ``full``
    taken: int = 0  # claims or actives answered ``taken``
    group: int = 0  # claims answered ``group`` (server-group refusals)
    unplaced: int = 0  # fetched with no eligible host left: nak'ed
    errors: int = 0  # claims or actives lost to the network or a 5xx: nak'ed
    deleted: int = 0  # deletes torn down and confirmed
    usage_reads: int = 0  # usage re-read from Placement (after ``full``, unknown deletes)

    def line(self, hosts: int, eligible_hosts: int, queues_served: int, queues_known: int) -> str:
        """One line: the counters, the hosts (all, and those that can take some queue's
        work now), the queues fetched from / known."""
        counts = " ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))
        return (
            f"{counts} hosts={hosts} eligible_hosts={eligible_hosts}"
            f" queues={queues_served}/{queues_known}"
        )
