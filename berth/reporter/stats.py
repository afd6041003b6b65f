"""What reporters did: sends, failures, latencies; the summary printed at exit."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

RESERVOIR = 100_000  # latencies kept for the percentiles (a uniform sample of all)


@dataclasses.dataclass
class Stats:
    """Counters shared by every reporter of the process."""

    hosts: int = 0
    interval: float = 10.0
    sent: int = 0  # PATCHes the server accepted
    failed: int = 0  # sends lost to the network, a 5xx or a refusal
    latencies: list[float] = dataclasses.field(default_factory=list)
    seen: int = 0  # latencies offered to the reservoir
    started: float = dataclasses.field(default_factory=time.monotonic)

    def record(self, seconds: float) -> None:
        """One accepted send that took ``seconds``."""
        self.sent += 1
        self.seen += 1
        if len(self.latencies) < RESERVOIR:
            self.latencies.append(seconds)
        else:
            slot = random.randrange(self.seen)
            if slot < RESERVOIR:
                self.latencies[slot] = seconds

    def summary(self) -> dict[str, Any]:
        """sent, failed, achieved and expected rates per second, p50/p99 latency in ms."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        ordered = sorted(self.latencies)
        return {
            "hosts": self.hosts,
            "sent": self.sent,
            "failed": self.failed,
            "seconds": round(elapsed, 2),
            "rate_per_s": round(self.sent / elapsed, 1),
            "expected_per_s": round(self.hosts / self.interval, 1),
            "p50_ms": _percentile_ms(ordered, 0.50),
            "p99_ms": _percentile_ms(ordered, 0.99),
        }


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)
