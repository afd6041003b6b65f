"""Everything ``berth agent`` is told on its command line."""

from __future__ import annotations

import dataclasses
import re

from berth.agent.choice import CHOICES

# A NATS subject token: the agent's name is one (berth.delete.<agent>.<host>).
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class NatsNames:
    """Where the work, the deletes and the queue list live (docs/pull.md)."""

    work_stream: str = "BERTH_WORK"
    delete_stream: str = "BERTH_DELETE"
    delete_prefix: str = "berth.delete"
    queues_bucket: str = "berth-queues"


@dataclasses.dataclass(frozen=True)
class HostTemplate:
    """The inventory and traits of the hosts ``--create`` makes."""

    vcpu: int = 32
    memory_mb: int = 131072
    disk_gb: int = 1000
    reserved_memory_mb: int = 1024
    cpu_allocation_ratio: float = 1.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    traits: tuple[str, ...] = ()

    def inventories(self) -> dict[str, dict[str, float | int]]:
        """The PUT /resource_providers/{uuid}/inventories body's ``inventories``."""
        rows = {
            "VCPU": (self.vcpu, 0, self.cpu_allocation_ratio),
            "MEMORY_MB": (self.memory_mb, self.reserved_memory_mb, self.ram_allocation_ratio),
            "DISK_GB": (self.disk_gb, 0, self.disk_allocation_ratio),
        }
        return {
            rc: {"total": total, "reserved": reserved, "allocation_ratio": ratio}
            for rc, (total, reserved, ratio) in rows.items()
            if total > 0
        }


@dataclasses.dataclass(frozen=True)
class AgentOptions:
    """One agent process's configuration."""

    name: str
    url: str = "http://127.0.0.1:8778"
    token: str = "admin"
    nats_url: str = "nats://127.0.0.1:4222"
    hosts_from: str | None = None
    create: int = 0
    name_prefix: str = "host-"
    template: HostTemplate = HostTemplate()
    choice: str = "pack"
    seed: int | None = None
    boot_seconds: float = 0.0
    heartbeat_seconds: float = 10.0
    fetch_batch: int = 64
    fetch_timeout: float = 1.0
    tick_seconds: float = 0.005
    retry_delay: float = 1.0
    group_delay: float = 0.2
    shutdown_grace: float = 5.0
    stats_every: float = 0.0
    read_concurrency: int = 16
    boot_log: str | None = None
    names: NatsNames = NatsNames()

    def check(self) -> None:
        """ValueError naming the first option that cannot work."""
        if not TOKEN.match(self.name):
            raise ValueError(f"--name {self.name!r}: 1 to 64 letters, digits, '-' and '_'")
        if (self.hosts_from is None) == (self.create <= 0):
            raise ValueError("give exactly one of --hosts-from PREFIX and --create N")
        if self.choice not in CHOICES:
            raise ValueError(f"--choice must be one of {', '.join(CHOICES)}")
        if self.fetch_batch < 1 or self.fetch_timeout <= 0:
            raise ValueError("--fetch-batch must be >= 1 and --fetch-timeout > 0")
        if self.heartbeat_seconds <= 0:
            raise ValueError("--heartbeat-seconds must be > 0")
