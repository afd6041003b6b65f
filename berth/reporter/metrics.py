"""What a reporter sends: this machine's metrics read from /proc, or synthetic ones."""

from __future__ import annotations

import dataclasses
import math
import os
import random
from pathlib import Path

MB = 1024 * 1024
GB = 1024 * MB


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat: busy and total jiffies."""

    busy: int
    total: int


def read_cpu_times(proc: Path = Path("/proc")) -> CpuTimes:
    """The cpu line of /proc/stat (idle and iowait count as not busy)."""
    first = (proc / "stat").read_text().split("\n", 1)[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    # guest time is already counted in user: the first 8 fields are the whole
    total = sum(values[:8])
    return CpuTimes(busy=total - idle, total=total)


def cpu_percent(before: CpuTimes, after: CpuTimes) -> float:
    """Percent of the CPU time between two samples that was busy (0 when none passed)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return round(100.0 * (after.busy - before.busy) / total, 1)


def read_meminfo(proc: Path = Path("/proc")) -> tuple[float, float]:
    """(used, total) memory in MB; used = total - MemAvailable."""
    fields: dict[str, int] = {}
    for line in (proc / "meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) if rest.split() else 0
    total_kb = fields["MemTotal"]
    available_kb = fields.get("MemAvailable", fields.get("MemFree", 0))
    return round((total_kb - available_kb) / 1024, 1), round(total_kb / 1024, 1)


class ProcMetrics:
    """This machine's metrics; cpu_util is measured between two calls of :meth:`sample`."""

    def __init__(self, disk_path: str = "/", proc: Path = Path("/proc")) -> None:
        self.disk_path = disk_path
        self.proc = proc
        self.last = read_cpu_times(proc)

    def sample(self) -> dict[str, float]:
        """cpu_util (percent since the last sample), load_1m, memory_used_mb,
        memory_total_mb, disk_free_gb (of ``disk_path``)."""
        now = read_cpu_times(self.proc)
        cpu = cpu_percent(self.last, now)
        self.last = now
        load_1m = float((self.proc / "loadavg").read_text().split()[0])
        used_mb, total_mb = read_meminfo(self.proc)
        fs = os.statvfs(self.disk_path)
        return {
            "cpu_util": cpu,
            "load_1m": load_1m,
            "memory_used_mb": used_mb,
            "memory_total_mb": total_mb,
            "disk_free_gb": round(fs.f_bavail * fs.f_frsize / GB, 2),
        }


class SyntheticMetrics:
    """Made-up metrics of one simulated host: a slow wave plus noise, different per host."""

    def __init__(self, index: int, seed: int | None = None) -> None:
        self.rng = random.Random(None if seed is None else seed + index)
        self.phase = self.rng.uniform(0, 2 * math.pi)
        self.memory_total_mb = float(self.rng.choice((65536, 131072, 262144)))
        self.step = 0

    def sample(self) -> dict[str, float]:
        """The same keys as :class:`ProcMetrics`, varying from one sample to the next."""
        self.step += 1
        wave = (math.sin(self.phase + self.step / 10) + 1) / 2  # 0..1
        cpu = min(100.0, max(0.0, 100 * wave + self.rng.gauss(0, 5)))
        return {
            "cpu_util": round(cpu, 1),
            "load_1m": round(cpu / 100 * 32 * self.rng.uniform(0.8, 1.2), 2),
            "memory_used_mb": round(self.memory_total_mb * (0.2 + 0.6 * wave), 1),
            "memory_total_mb": self.memory_total_mb,
            "disk_free_gb": round(500 + 400 * (1 - wave), 2),
        }
