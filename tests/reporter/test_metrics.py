"""The reporter's metrics: /proc parsing (on a fake /proc) and the synthetic source."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.reporter.metrics import (
    CpuTimes,
    ProcMetrics,
    SyntheticMetrics,
    cpu_percent,
    read_cpu_times,
    read_meminfo,
)


def _proc(tmp: Path, cpu: str, load: str = "1.50 1.00 0.50 2/300 4000") -> Path:
    (tmp / "stat").write_text(f"cpu  {cpu}\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    (tmp / "loadavg").write_text(load + "\n")
    (tmp / "meminfo").write_text(
        "MemTotal:       8388608 kB\nMemFree:         1048576 kB\nMemAvailable:    2097152 kB\n"
    )
    return tmp


@pytest.mark.parametrize(
    ("before", "after", "percent"),
    [
        (CpuTimes(0, 100), CpuTimes(50, 200), 50.0),
        (CpuTimes(10, 100), CpuTimes(10, 200), 0.0),
        (CpuTimes(0, 100), CpuTimes(100, 200), 100.0),
        (CpuTimes(0, 100), CpuTimes(0, 100), 0.0),  # no time passed
    ],
)
def test_cpu_percent(before: CpuTimes, after: CpuTimes, percent: float) -> None:
    assert cpu_percent(before, after) == percent


def test_cpu_times_count_idle_and_iowait_as_not_busy(tmp_path: Path) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    proc = _proc(tmp_path, "10 0 10 70 10 0 0 0 5 0")
    assert read_cpu_times(proc) == CpuTimes(busy=20, total=100)


def test_meminfo_used_is_total_less_available(tmp_path: Path) -> None:
    assert read_meminfo(_proc(tmp_path, "1 0 1 1 0 0 0 0")) == (6144.0, 8192.0)


def test_proc_metrics_measure_cpu_between_samples(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "10 0 10 80 0 0 0 0")
    source = ProcMetrics(str(tmp_path), proc)
    _proc(tmp_path, "40 0 40 120 0 0 0 0", "3.25 1 1 1/1 1")  # +60 busy of +100
    sample = source.sample()
    assert sample["cpu_util"] == 60.0
    assert sample["load_1m"] == 3.25
    assert (sample["memory_used_mb"], sample["memory_total_mb"]) == (6144.0, 8192.0)
    assert sample["disk_free_gb"] > 0


def test_this_machines_proc_is_readable() -> None:
    sample = ProcMetrics("/").sample()
    assert set(sample) == {"cpu_util", "load_1m", "memory_used_mb", "memory_total_mb",
                           "disk_free_gb"}  # fmt: skip
    assert 0 <= sample["cpu_util"] <= 100 and sample["memory_total_mb"] > 0


def test_synthetic_metrics_vary_and_stay_in_range() -> None:
    source = SyntheticMetrics(3, seed=1)
    samples = [source.sample() for _ in range(50)]
    assert len({s["cpu_util"] for s in samples}) > 10
    assert all(0 <= s["cpu_util"] <= 100 for s in samples)
    assert all(s["memory_used_mb"] <= s["memory_total_mb"] for s in samples)
    assert SyntheticMetrics(4, seed=1).sample() != SyntheticMetrics(3, seed=1).sample()
