"""One host's reporting loop: sample, PATCH, wait a jittered interval; back off in outages.

The loop never ends by itself: a server outage (network errors, 5xx) backs off
exponentially up to ``max_backoff`` and is logged once when it starts and once
when it ends (:class:`Outage`, shared by every host of the process); a refusal
(4xx) is logged once per host and tried again next interval.  The runner
cancels the loop to stop it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from typing import Protocol

import structlog

from berth.reporter.client import Refused, StateClient, Unavailable
from berth.reporter.stats import Stats

log = structlog.get_logger("berth.reporter")
FIRST_BACKOFF = 0.5  # seconds after the first failed send


class Source(Protocol):
    """What a host reports: one sample of metrics per send."""

    def sample(self) -> dict[str, float]:
        """Name -> number."""
        ...


class Outage:
    """Whether the server is down, so that an outage is logged once, not once per send."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0

    def down(self, error: str) -> None:
        """A send failed on the network or with a 5xx."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            log.warning("reporter.server_unavailable", error=error)

    def up(self) -> None:
        """A send was answered."""
        if self.since is not None:
            seconds = round(time.monotonic() - self.since, 1)
            log.info("reporter.server_back", seconds=seconds, failed_sends=self.failures)
            self.since, self.failures = None, 0


@dataclasses.dataclass(frozen=True)
class Pace:
    """How often a host sends: the interval, its jitter (a fraction), the longest backoff."""

    interval: float = 10.0
    jitter: float = 0.1
    max_backoff: float = 60.0

    def next_interval(self, rng: random.Random) -> float:
        """The interval, moved by up to ``jitter`` of itself either way."""
        return self.interval * (1 + rng.uniform(-self.jitter, self.jitter))

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` failed sends in a row (with full jitter)."""
        ceiling = min(self.max_backoff, FIRST_BACKOFF * 2 ** min(failures - 1, 30))
        return rng.uniform(ceiling / 2, ceiling)


@dataclasses.dataclass
class HostReporter:
    """Reports one host's ``namespace``: ``{"metrics": source.sample()}`` as a merge patch."""

    client: StateClient
    uuid: str
    namespace: str
    source: Source
    pace: Pace
    stats: Stats
    outage: Outage
    limit: asyncio.Semaphore  # sends in flight in the whole process
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    refused_logged: bool = False

    async def run(self, first_delay: float) -> None:
        """Send at ``first_delay``, then every (jittered) interval, until cancelled.

        Sends are scheduled from the previous schedule, not from the end of the
        previous send, so slow answers do not lower the rate; a send that is late
        goes at once (missed ones are not made up).
        """
        due = time.monotonic() + first_delay
        failures = 0
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if await self.send_once():
                failures = 0
                due = max(due + self.pace.next_interval(self.rng), time.monotonic())
            else:
                failures += 1
                due = time.monotonic() + self.pace.backoff(failures, self.rng)

    async def send_once(self) -> bool:
        """One PATCH of the current sample; whether the server took it."""
        async with self.limit:
            started = time.perf_counter()
            try:
                await self.client.patch(
                    self.uuid, self.namespace, {"metrics": self.source.sample()}
                )
            except Unavailable as exc:
                self.stats.failed += 1
                self.outage.down(str(exc))
                return False
            except Refused as exc:
                self.stats.failed += 1
                self.outage.up()
                if not self.refused_logged:
                    log.error("reporter.refused", host=self.uuid, error=str(exc))
                    self.refused_logged = True
                return True  # not an outage: the next interval, not a backoff
            self.stats.record(time.perf_counter() - started)
            self.outage.up()
            self.refused_logged = False
            return True
