"""``berth bench hoststate``: its parts (backends, /metrics, database counters) table-driven,
then a tiny real run (20 hosts, a 2 s window) and its line, and SIGINT mid-run.

A run starts a berth server, ``berth host report`` processes and scheduler
processes of its own; every one of them must be gone when the command
returns, and when it is stopped by a signal.

The tiny run goes on SQLite and PostgreSQL: the line's database figures differ
between the two (no server counters, and WAL bytes only on PostgreSQL).  On
MariaDB they are those of tests/bench/test_cost.py's counters, which reads
them there.  The signal is SIGINT (Ctrl-C, KeyboardInterrupt); SIGTERM, which
``berth.cli.main`` turns into the same unwinding, stops ``berth bench pull``
in tests/bench/test_pull.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth.bench import dbload, hoststate, procfs, promtext, records, report, report_hoststate
from berth.cli import app
from tests.conftest import backend_url, fresh_database

ROOT = Path(__file__).resolve().parent.parent.parent
HOSTS = 20

# Processes below this test process before the test began (the servers of another
# module's session fixtures, multiprocessing's resource tracker) are not the command's.
_before: set[int] = set()


@pytest.fixture(autouse=True)
def _already_running() -> None:
    _before.clear()
    _before.update(procfs.running(procfs.descendants(os.getpid())))


def _ours(pids: list[int] | None = None) -> list[str]:
    """Command lines of the servers, reporters and scheduler processes still running below
    this test and started by it (or among ``pids``)."""
    if pids is None:
        pids = [p for p in procfs.descendants(os.getpid()) if p not in _before]
    found = []
    for pid in procfs.running(pids):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(mark in line for mark in ("berth.cli", "granian", "spawn_main")):
            found.append(line)
    return found


KNOWN = {"database_url", "host_state_sync"}
UNKNOWN = {"database_url"}
VAR = "BERTH_HOST_STATE_SYNC"


@pytest.mark.parametrize(
    ("values", "known", "expected"),
    [
        (["db"], UNKNOWN, [("db", {})]),  # today's berth: polling, not a setting
        (["db", "redis"], UNKNOWN, "cannot be measured"),
        (["redis", "nats"], KNOWN, [("redis", {VAR: "redis"}), ("nats", {VAR: "nats"})]),
        (["db"], KNOWN, [("db", {VAR: "db"})]),
        ([""], KNOWN, "one or more backend names"),
    ],
)  # fmt: skip
def test_backends_become_the_servers_setting_only_where_it_has_one(
    values: list[str], known: Collection[str], expected: object
) -> None:
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            hoststate.sync_envs(values, known)
    else:
        assert hoststate.sync_envs(values, known) == expected


def _histogram(counts: Sequence[float]) -> promtext.Samples:
    """Cumulative bucket samples of a histogram with bounds 0.1, 0.5, 1, +Inf."""
    bounds = ("0.1", "0.5", "1.0", "+Inf")
    samples: promtext.Samples = {
        ("h_bucket", (("le", le),)): count for le, count in zip(bounds, counts, strict=True)
    }
    samples[("h_count", ())] = counts[-1]
    samples[("h_sum", ())] = 0.4 * counts[-1]
    return samples


@pytest.mark.parametrize(
    ("counts", "p50", "p99"),
    [
        ([0, 0, 0, 0], None, None),  # nothing observed
        ([60, 99, 100, 100], 0.1, 0.5),  # the rank's bucket: its upper bound
        ([0, 50, 100, 100], 0.5, 1.0),  # exactly half at 0.5: p50 is that bucket's
        ([10, 20, 30, 100], None, None),  # beyond the last finite bound: unknown
        ([0, 0, 98, 100], 1.0, None),
    ],
)  # fmt: skip
def test_percentiles_are_the_upper_bounds_of_their_buckets(
    counts: list[float], p50: float | None, p99: float | None
) -> None:
    found = promtext.histogram_summary(_histogram(counts), "h")
    assert (found["p50"], found["p99"], found["count"]) == (p50, p99, counts[-1])


def test_a_window_is_the_growth_of_every_sample() -> None:
    before = promtext.parse(
        'r_total{route="/a",method="PATCH",status="200"} 5\n'
        'r_total{route="/a",method="PATCH",status="409"} 1\n'
    )
    after = promtext.parse(
        'r_total{route="/a",method="PATCH",status="200"} 25\n'
        'r_total{route="/a",method="PATCH",status="409"} 1\n'
        'r_total{route="/a",method="PATCH",status="500"} 2\n'
        'r_total{route="/b",method="PATCH",status="200"} 7\n'
    )
    grown = promtext.delta(before, after)
    assert promtext.by_label(grown, "r_total", "status", route="/a") == {
        "200": 20.0, "409": 0.0, "500": 2.0,
    }  # fmt: skip
    assert promtext.total(grown, "r_total", status="200") == 27.0


@pytest.mark.parametrize(
    ("before", "after", "common"),
    [
        ({"xact_commit": 10, "tup_inserted": 0, "tup_updated": 0, "tup_deleted": 0},
         {"xact_commit": 30, "tup_inserted": 4, "tup_updated": 10, "tup_deleted": 2},
         {"commits_per_s": 10.0, "rows_written_per_s": 8.0}),
        ({"Questions": 0, "Com_commit": 0, "Handler_write": 0, "Handler_update": 0,
          "Handler_delete": 0},
         {"Questions": 50, "Com_commit": 8, "Handler_write": 2, "Handler_update": 2,
          "Handler_delete": 0},
         {"commits_per_s": 4.0, "rows_written_per_s": 2.0}),
        ({"state_log_rows": 100}, {"state_log_rows": 140}, {}),  # SQLite: the logs only
    ],
)  # fmt: skip
def test_database_counters_become_rates_with_common_names(
    before: dict[str, float], after: dict[str, float], common: dict[str, float]
) -> None:
    found = dbload.rates(before, after, 2.0)
    assert {k: found[k] for k in common} == common
    assert ("commits_per_s" in found) == bool(common)
    assert all(f"{name}_per_s" in found for name in after)


def test_reporters_must_split_the_hosts_by_name() -> None:
    result = CliRunner().invoke(app, ["bench", "hoststate", "--hosts", "20", "--reporters", "3"])
    assert result.exit_code == 2 and "try one of [1, 2, 20]" in result.output
    assert _ours() == []


def _args(backend: str, tmp_path: Path, out: Path) -> list[str]:
    return ["bench", "hoststate", "--database-url", backend_url(backend, tmp_path), "--hosts",
            str(HOSTS), "--interval", "1", "--reporters", "2", "--workers", "2", "--warmup",
            "1", "--seconds", "2", "--out", str(out)]  # fmt: skip


@pytest.mark.slow  # a server, two reporters and two schedulers: about 20 s on 2 cores
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_tiny_run_writes_its_line(backend: str, tmp_path: Path) -> None:
    fresh_database(backend, tmp_path).dispose()
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(app, _args(backend, tmp_path, out))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert _ours() == []  # the command stopped everything it started
    (line,) = records.load([out])
    assert line["kind"] == "hoststate" and line["target"] == "serve"
    s, r = line["settings"], line["result"]
    assert (s["hosts"], s["interval"], s["sync"], s["namespace"]) == (HOSTS, 1.0, "db", "compute")
    assert (s["workers"], s["reporters"], s["seconds"], s["warmup"]) == (2, 2, 2.0, 1.0)
    assert line["conditions"]["settings"] == {} and line["conditions"]["db"] == backend
    assert 1.5 < r["window_s"] < 4.0
    # Updates: 20 hosts every second offered; the server's own count of those it took.
    assert r["updates_offered_per_s"] == 20.0 and r["updates_per_s"] > 0
    assert r["update_statuses"].get("200", 0) > 0 and r["update_refusals"] == 0, r
    assert r["reporter"]["hosts"] == HOSTS and r["reporter"]["sent"] > 0
    assert r["reporter"]["processes"] == 2 and r["reporter"]["stopped_without_stats"] == 0
    # Scheduling: the server's claim count over the window, the clients' over their run.
    assert r["placed_per_s"] > 0 and r["claimed"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
    assert r["over_capacity"] == 0
    # Staleness: the workers applied the reporters' writes and said how late.
    assert r["staleness_observations"] > 0, r
    assert r["staleness_p50_s"] is not None and r["staleness_mean_s"] >= 0
    assert r["staleness_buckets"][-1][1] <= r["staleness_observations"]
    # Database load: berth's own log counts everywhere, the server's own where it has them.
    assert r["database"]["state_log_rows_per_s"] > 0
    if backend != "sqlite":
        assert r["database"]["commits_per_s"] > 0 and r["database"]["rows_written_per_s"] > 0
    assert ("wal_bytes_per_s" in r["database"]) == (backend == "postgresql")
    assert set(r["cpu_cores"]) == {"server", "reporters", "clients", "database"}
    assert len(r["worker_rss_mb"]) == 2 and min(r["worker_rss_mb"]) > 0
    assert "hoststate" in result.output


@pytest.mark.slow
def test_sigint_stops_everything(tmp_path: Path) -> None:
    args = _args("sqlite", tmp_path, tmp_path / "results.jsonl")
    args[args.index("--seconds") + 1] = "600"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Its output (and its children's) to a file: a pipe nobody reads would fill and stop them.
    log = (tmp_path / "output.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "berth.cli", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while sum("spawn_main" in line for line in _ours()) < 2:  # schedulers at work
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        started = procfs.descendants(proc.pid)  # orphans would leave the tree: keep their pids
        assert sum("host report" in line for line in _ours(started)) == 2
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        assert _ours(started) == []
        assert not (tmp_path / "results.jsonl").exists()
    except BaseException:
        sys.stderr.write((tmp_path / "output.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _line(sync: str, interval: float, **result: object) -> dict[str, object]:
    """A hoststate result line as the command writes it (a non-default backend is a setting
    the server was given)."""
    settings = {"sync": sync, "interval": interval, "hosts": 10000, "workers": 8,
                "concurrency": 1, "reporters": 10, "reporter_concurrency": 64}  # fmt: skip
    changed = {} if sync == "db" else {"host_state_sync": sync}
    conditions = {"db": "postgresql", "server": "granian", "server_workers": 2,
                  "settings": changed, "kind": "berth-http", "target": "serve"}  # fmt: skip
    figures = {"updates_offered_per_s": 1000.0, "updates_per_s": 990.0, "updates_held_pct": 99.0,
               "update_refusals": 0, "placed_per_s": 500.0, "p50_ms": 9.0, "p99_ms": 80.0,
               "staleness_p50_s": 0.75, "staleness_p99_s": 1.5, "worker_rss_mb": [120.0, 110.0],
               "database": {"commits_per_s": 1500.0, "rows_written_per_s": 4000.0,
                            "state_log_rows_per_s": 990.0},
               **result}  # fmt: skip
    return {"kind": "hoststate", "target": "serve", "settings": settings, "result": figures,
            "conditions": conditions, "machine": {"loadavg": [1.0, 1.0, 1.0]}}  # fmt: skip


def test_the_report_tables_backends_side_by_side() -> None:
    lines = [_line("db", 10.0), _line("db", 1.0, staleness_p99_s=None),
             _line("redis", 1.0, staleness_p50_s=0.005, staleness_p99_s=0.025)]  # fmt: skip
    assert "hoststate" in [kind for kind, _, _ in report.SECTIONS]
    text = report_hoststate.hoststate_table(lines)  # type: ignore[arg-type]
    assert text.count("**default settings**") == 1  # the backend is a column, not a section
    rows = [r.split(" | ") for r in text.splitlines() if r.startswith(("| db |", "| redis |"))]
    assert [(r[0], r[1]) for r in rows] == [
        ("| db", "10.00"),
        ("| db", "1.00"),
        ("| redis", "1.00"),
    ]
    assert (rows[0][14], rows[0][15]) == ("0.75", "1.5")
    assert rows[1][15] == "-"  # beyond the last bucket: not a number
    assert (rows[2][14], rows[2][15]) == ("0.005", "0.025")  # bounds kept as they are
