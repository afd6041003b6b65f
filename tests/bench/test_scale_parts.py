"""The pieces of berth bench hosts scale that need no namespace: settings, parts, tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from berth.bench import multihost, netns, records, report, scale
from berth.cli import app


def _line(workload: str, count: int, rate: float, hosts_cpu: float) -> dict[str, Any]:
    plan = scale.ScalePlan("postgresql://u@h/db", hosts=100, seconds=5)
    result = {"rate": rate, "hosts_cpu_ms_per_request": hosts_cpu, "p50_ms": 1.0,
              "p99_ms": 9.0, "errors": 0, "over_capacity": 0}  # fmt: skip
    conditions = {"target": "hosts", "kind": "berth-http", "db": "postgresql",
                  "server": "granian", "server_workers": 1, "berth_hosts": count,
                  "settings": {}}  # fmt: skip
    return records.record("scale", "hosts", plan.settings(count, workload), result, conditions)


def test_the_report_tables_each_host_count_and_shows_what_was_not_measured() -> None:
    lines = [_line("read", 1, 500.0, 3.0), _line("read", 2, 800.0, 3.2),
             _line("claims", 1, 200.0, 9.0)]  # fmt: skip
    text = report.render(lines)
    assert "## Several berth hosts behind HAProxy" in text
    assert "| read | 1 | 1 | 100 | 4x2 | postgresql | 500 | 3.00 | - |" in text
    assert "| read | 2 | 1 | 100 | 4x2 | postgresql | 800 | 3.20 | - |" in text
    assert "| claims | 1 | 1 | 100 | 8 placement pack/none | postgresql | 200 | 9.00 |" in text


def test_parts_are_the_hosts_the_front_and_the_forwarders(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(5)]
    try:
        run = multihost.Deployment(netns.Plan(1), tmp_path, ["postgresql://x"], 1, {})
        for i in range(2):
            run.hosts.append(multihost.Host(i, f"http://h{i}", "", tmp_path / "log",
                                            procs[2 * i], procs[2 * i + 1]))  # fmt: skip
        run.front = procs[4]
        assert scale.parts_of(run) == {
            "hosts": [procs[1].pid, procs[3].pid],
            "front": [procs[4].pid],
            "forwarders": [procs[0].pid, procs[2].pid],
        }
    finally:
        for proc in procs:
            proc.wait()


def test_the_command_refuses_bad_host_counts() -> None:
    for bad in ("0", "1,x", "40"):
        result = CliRunner().invoke(
            app, ["bench", "hosts", "scale", "--database-url", "postgresql://x/y", "--hosts", bad]
        )
        assert result.exit_code != 0
