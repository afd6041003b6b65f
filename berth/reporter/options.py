"""Everything ``berth host report`` is told on its command line."""

from __future__ import annotations

import dataclasses
import re

NAMESPACE = re.compile(r"^[a-z0-9_.-]{1,64}$")  # as the server checks (docs/scheduler.md)


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """One reporter process's configuration (real mode: ``host``; simulated: ``simulate``)."""

    url: str = "http://127.0.0.1:8778"
    token: str = "admin"
    host: str | None = None
    simulate: int = 0
    prefix: str | None = None
    namespace: str = "compute"
    interval: float = 10.0
    jitter: float = 0.1
    max_backoff: float = 60.0
    disk_path: str = "/"
    concurrency: int = 64
    timeout: float = 10.0
    duration: float = 0.0
    seed: int | None = None

    def check(self) -> None:
        """ValueError naming the first option that cannot work."""
        if (self.host is None) == (self.simulate <= 0):
            raise ValueError("give exactly one of --host UUID and --simulate N")
        if self.prefix is not None and self.simulate <= 0:
            raise ValueError("--prefix only goes with --simulate")
        if not NAMESPACE.match(self.namespace):
            raise ValueError("--namespace: 1 to 64 of a-z, 0-9, '_', '.', '-'")
        if self.namespace == "operator":
            raise ValueError("--namespace operator belongs to operators, not reporters")
        if self.interval <= 0 or not 0 <= self.jitter < 1:
            raise ValueError("--interval must be > 0 and --jitter in [0, 1)")
        if self.max_backoff <= 0 or self.timeout <= 0 or self.concurrency < 1:
            raise ValueError("--max-backoff and --timeout must be > 0, --concurrency >= 1")
