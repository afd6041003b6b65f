"""``berth bench pull``: a small real run of both designs, its lines, its invariants, its report.

The run starts a berth server, a private NATS, a ``berth agent`` and
enqueuer and scheduler processes of its own; every one of them must be gone
when the command returns, and when it is stopped with SIGTERM (SIGINT stops
``berth bench hoststate`` in tests/bench/test_hoststate.py).

Both designs on one list run on PostgreSQL; on SQLite, pull runs in the full
cloud and SIGTERM tests, and push's scheduler processes filling a cloud with a
list are ``berth bench fill``'s (tests/bench/test_end_to_end.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth.bench import agents, procfs, records, report, report_tables
from berth.bench.cli_pull import broken
from berth.bench.nats_server import NATS_SERVER
from berth.cli import app
from berth.scheduler import flavors
from tests.conftest import backend_url, fresh_database

ROOT = Path(__file__).resolve().parent.parent.parent
HOSTS, REQUESTS = 20, 60


# Processes below this test process before the test began: the servers of session-scoped
# fixtures (another module's, under pytest-xdist) are not the command's to stop.
_before: set[int] = set()


@pytest.fixture(autouse=True)
def _already_running() -> None:
    _before.clear()
    _before.update(procfs.running(procfs.descendants(os.getpid())))


def _ours(pids: list[int] | None = None) -> list[str]:
    """Command lines of the servers, agents and NATS servers still running below this test
    and started by it (or among ``pids``)."""
    found = []
    if pids is None:
        pids = [p for p in procfs.descendants(os.getpid()) if p not in _before]
    for pid in procfs.running(pids):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "nats-server" in line or "berth.cli" in line or "granian" in line:
            found.append(line)
    return found


@pytest.fixture
def nats_binary() -> None:
    if not Path(NATS_SERVER).exists():
        pytest.skip(f"no nats-server at {NATS_SERVER}")


@pytest.mark.parametrize(
    ("names", "count", "expected"),
    [
        (["r00-k000-h000-000000", "r00-k001-h000-000020"], 1, ["r"]),
        ([f"r00-k{k:03d}-h{h:03d}" for k in range(4) for h in range(20)], 2, None),
        ([f"r00-k{k:03d}-h{h:03d}" for k in range(4) for h in range(20)], 4,
         ["r00-k000", "r00-k001", "r00-k002", "r00-k003"]),
        ([f"r{r:02d}-k000" for r in range(20)], 2, ["r0", "r1"]),
    ],
)  # fmt: skip
def test_hosts_split_by_name_prefix(names: list[str], count: int, expected: list[str]) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="try one of"):
            agents.prefixes(names, count)
    else:
        assert agents.prefixes(names, count) == expected


@pytest.mark.slow  # a server, NATS, an agent and client processes: about a minute on 2 cores
@pytest.mark.parametrize("backend", ["postgresql"])  # BERTH_TEST_BACKENDS=sqlite leaves it out
@pytest.mark.usefixtures("nats_binary")
def test_push_and_pull_on_one_list(backend: str, tmp_path: Path) -> None:
    fresh_database(backend, tmp_path).dispose()
    out = tmp_path / "results.jsonl"
    args = ["bench", "pull", "--database-url", backend_url(backend, tmp_path), "--hosts",
            str(HOSTS), "--requests", str(REQUESTS), "--projects", "3", "--settle", "5",
            "--workers", "2", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert _ours() == []  # the command stopped everything it started
    push, pull = records.load([out])
    assert (push["kind"], pull["kind"]) == ("pull", "pull")
    assert push["settings"]["design"] == "push" and pull["settings"]["design"] == "pull"
    assert pull["settings"]["projects"] == 3 and pull["settings"]["hosts"] == HOSTS
    assert pull["conditions"]["settings"] == {}  # its own NATS is the lab's, not a setting
    # A push request may give up after lost races (MariaDB, 2 server workers); pull retries.
    assert push["result"]["placed"] + push["result"]["give_ups"] == REQUESTS, push["result"]
    # Every request accounted for: accepted and placed, or refused with a reason counted
    # (409 concurrent_update: the project's generation swap lost more often than retried).
    r = pull["result"]
    assert r["over_quota"] == 0 and r["placed"] == r["accepted"], r
    lost = r["conflicts"] + r["server_errors"] + r["failed_calls"]
    assert r["accepted"] + lost == REQUESTS and lost <= REQUESTS // 10, r
    for line in (push, pull):
        r = line["result"]
        assert r["requests"] == REQUESTS and r["ended"] == "list"
        assert r["placed_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        assert 0 < r["hosts_used"] <= HOSTS and r["memory_mb_used_pct"] > 0
        assert r["over_capacity"] == 0 and broken(r) == 0
        # CPU per placement: the server and the clients worked; the parts add up.
        assert r["server_cpu_ms_per_placed"] > 0 and r["clients_cpu_ms_per_placed"] > 0, r
        parts = [v for k, v in r.items() if k.endswith("_cpu_ms_per_placed")]
        assert abs(sum(parts) - r["cpu_ms_per_placed"]) < 0.01 * len(parts), r
        assert r["cpu_ceiling_per_s"] > 0
    assert push["result"]["list_sha256"] == pull["result"]["list_sha256"]
    r = pull["result"]
    assert r["states"] == {"active": r["accepted"]} and r["timed_instances"] == r["accepted"]
    assert r["queues"] >= 6 and r["nats_memory_mb"] > 0 and r["quota_checks_per_s"] > 0
    assert (r["withdrawn"], r["torn_down"]) == (0, 0)
    assert r["agents"][0]["placed"] == r["accepted"]
    assert r["agents_cpu_ms_per_placed"] > 0 and "nats_cpu_ms_per_placed" in r, r
    assert (push["result"]["queues"], push["result"]["nats_memory_mb"]) == (0, None)
    text = report.render(records.load([out]))
    assert "## Pull against push (berth bench pull)" in text
    assert "| 20 | pull | pack |" in text and "| 20 | push | pack |" in text


@pytest.mark.slow
@pytest.mark.usefixtures("nats_binary")
def test_a_full_cloud_withdraws_what_waits(tmp_path: Path) -> None:
    """More than fits: the run ends full or with the list used up; every instance ends
    active, or deleted by the lab (withdrawn, or torn down with a batch's queued
    siblings), none over capacity."""
    out = tmp_path / "results.jsonl"
    args = ["bench", "pull", "--database-url", backend_url("sqlite", tmp_path), "--hosts", "2",
            "--design", "pull", "--window", "60", "--batch", "4", "--settle", "3", "--out",
            str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert _ours() == []
    (line,) = records.load([out])
    r = line["result"]
    assert r["ended"] in ("full", "list") and r["withdrawn"] > 0
    assert line["settings"]["batch"] == 4 and r["accepted"] == r["requests"]
    assert r["states"]["active"] == r["placed"] - r["torn_down"]
    assert r["states"]["deleted"] == r["withdrawn"] + r["torn_down"]
    assert broken(r) == 0 and r["memory_mb_used_pct"] > 90


@pytest.mark.slow
@pytest.mark.usefixtures("nats_binary")
def test_sigterm_stops_everything(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "berth.cli", "bench", "pull", "--database-url",
               backend_url("sqlite", tmp_path), "--hosts", str(HOSTS), "--design", "pull",
               "--out", str(tmp_path / "results.jsonl")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its output (and its children's) to a file: a pipe nobody reads would fill and stop them.
    log = (tmp_path / "output.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not any("agent" in line for line in _ours()):  # the run is under way
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        started = procfs.descendants(proc.pid)  # orphans would leave the tree: keep their pids
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
        assert _ours(started) == []
    except BaseException:
        sys.stderr.write((tmp_path / "output.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _line(design: str, **result: object) -> dict[str, object]:
    """A pull result line as the command writes it (push with the pack strategy's weighers)."""
    settings: dict[str, object] = {"design": design, "hosts": 100, "strategy": "pack"}
    if design == "push":
        settings["workers"] = 8
        changed: dict[str, object] = {"scheduler_weighers": "ram=-1,cpu=-1"}
    else:
        settings.update(enqueuers=2, threads=4, window=2000, agents=1, projects=100)
        changed = {}
    conditions = {"db": "postgresql", "server": "granian", "server_workers": 2,
                  "settings": changed, "kind": "berth-http", "target": "serve"}  # fmt: skip
    figures = {"placed": 3890, "placed_per_s": 300.0, "p50_ms": 9.0, "p99_ms": 80.0,
               "hosts_used": 100, "memory_mb_used_pct": 99.99, "queues": 6,
               "nats_memory_mb": 20.0, "quota_checks_per_s": 400.0, "ended": "list",
               "list_length": 4680, "list_sha256": "2c8886c5cdf70955", "over_capacity": 0,
               **result}  # fmt: skip
    return {"kind": "pull", "target": "serve", "settings": settings, "result": figures,
            "conditions": conditions, "machine": {"loadavg": [1.0, 1.0, 1.0]}}  # fmt: skip


def test_the_report_tables_both_designs_together_and_counts_broken_invariants() -> None:
    text = report_tables.pull_table([_line("push"), _line("pull", misplaced=2, leaked=1)])
    assert text.count("**default settings**") == 1  # push's pack weighers are its strategy's
    rows = [r for r in text.splitlines() if r.startswith("| 100 |")]
    assert len(rows) == 2
    push, pull = (r.split(" | ") for r in rows)
    assert push[1] == "push" and push[-7:-4] == ["-", "-", "-"] and push[-3] == "0"
    assert pull[1] == "pull" and pull[-7:-4] == ["6", "20.00", "400"] and pull[-3] == "3"


def test_issue_13s_target_is_judged_on_pull_at_10000_hosts() -> None:
    met, slow, small = _line("pull", placed_per_s=1200.0), _line("pull"), _line("pull")
    for line in (met, slow):
        line["settings"]["hosts"] = 10000  # type: ignore[index]
    assert not report_tables.has_targets([small, _line("push")])
    rows = report_tables.targets_table([met]).splitlines()
    assert "| pull dispatch, filling the cloud (issue 13) | postgresql |" in rows[2]
    assert "| met | 0 invariants broken |" in rows[2]
    slow["result"]["misplaced"] = 1  # type: ignore[index]
    assert "| missed | 1 invariants broken (missed) |" in report_tables.targets_table([slow])


@pytest.mark.slow
@pytest.mark.usefixtures("nats_binary")
def test_a_failed_run_stops_what_it_started(tmp_path: Path) -> None:
    """A flavor of the lab's name with other resources stops the run after its server and
    NATS started: the command fails, and nothing it started is left running."""
    db = fresh_database("sqlite", tmp_path)
    with db.write() as conn:
        flavors.create(conn, flavors.from_body({"name": "bench-micro", "resources": {"VCPU": 3}}))
    db.dispose()
    args = ["bench", "pull", "--database-url", backend_url("sqlite", tmp_path), "--hosts", "5",
            "--design", "pull", "--out", str(tmp_path / "results.jsonl")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "flavor bench-micro exists with" in str(result.exception)
    assert _ours() == []
    assert not (tmp_path / "results.jsonl").exists()
