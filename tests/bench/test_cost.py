"""berth bench cost: the counters' arithmetic, the client threads' slots, the database
readings on PostgreSQL and MariaDB for real, and a small run through the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import typer
from conftest import server_database_url
from sqlalchemy import text
from typer.testing import CliRunner

from berth.bench import cli_cost, cost, dbstats, records, report
from berth.bench.cost_requests import REQUESTS, Slot
from berth.cli import app
from berth.db.engine import Database


@pytest.mark.parametrize(
    ("before", "after", "seconds", "idle", "overhead", "expected"),
    [
        ({"a": 1.0}, {"a": 11.0}, 2.0, None, None, {"a": 10.0}),
        ({"a": 1.0}, {"a": 11.0}, 2.0, {"a": 1.5}, None, {"a": 7.0}),
        ({"a": 1.0}, {"a": 11.0}, 2.0, {"a": 1.5}, {"a": 2.0}, {"a": 5.0}),
        ({}, {"a": 3.0, "b": 4.0}, 1.0, {"b": 1.0}, None, {"a": 3.0, "b": 3.0}),
    ],
)
def test_delta_takes_off_the_background_and_the_readings(
    before: dict[str, float],
    after: dict[str, float],
    seconds: float,
    idle: dict[str, float] | None,
    overhead: dict[str, float] | None,
    expected: dict[str, float],
) -> None:
    assert dbstats.delta(before, after, seconds, idle, overhead) == expected


@pytest.mark.parametrize(
    ("spent", "background", "ops", "expected"),
    [
        (0.12, 0.0, 12, 10.0),
        (0.12, 0.06, 12, 5.0),
        (0.12, 0.12, 12, None),  # the background took all of it: unknown, not free
        (0.01, 0.05, 12, None),  # a busy "idle" reading: unknown, not 0 (nor negative)
        (0.000001, 0.0, 12, None),  # below what a figure of 3 decimals shows
    ],
)
def test_cpu_per_request_is_net_of_the_background_or_unknown(
    spent: float, background: float, ops: int, expected: float | None
) -> None:
    assert cost.cpu_ms_per_request(spent, background, ops) == expected


def test_rates_are_per_second() -> None:
    assert dbstats.rates({"a": 0.0}, {"a": 10.0}, 4.0, {"a": 2.0}) == {"a": 2.0}
    assert dbstats.rates({"a": 0.0}, {"a": 10.0}, 0.0) == {}


POSTGRES_MOVED = {"xact_commit": 200.0, "xact_rollback": 20.0, "tup_returned": 900.0,
                  "tup_fetched": 100.0, "tup_inserted": 300.0, "tup_updated": 100.0,
                  "tup_deleted": 0.0, "blks_read": 0.0, "blks_hit": 10.0,
                  "active_time": 50.0}  # fmt: skip
MARIADB_MOVED = {"Questions": 1000.0, "Com_commit": 100.0, "Com_rollback": 100.0,
                 "Handler_read_key": 300.0, "Handler_read_next": 200.0, "Handler_write": 40.0,
                 "Handler_update": 60.0}  # fmt: skip


@pytest.mark.parametrize(
    ("moved", "expected"),
    [
        (POSTGRES_MOVED, {"commits_per_request": 2.0, "rollbacks_per_request": 0.2,
                          "rows_read_per_request": 10.0, "rows_written_per_request": 4.0,
                          "database_active_ms_per_request": 0.5}),
        ({**POSTGRES_MOVED, "statements": 700.0, "statement_rows": 0.0, "statement_ms": 30.0},
         {"statements_per_request": 7.0, "statement_ms_per_request": 0.3}),
        (MARIADB_MOVED, {"statements_per_request": 10.0, "commits_per_request": 1.0,
                         "rows_read_per_request": 5.0, "rows_written_per_request": 1.0}),
        ({}, {}),
    ],
)  # fmt: skip
def test_per_request(moved: dict[str, float], expected: dict[str, Any]) -> None:
    found = dbstats.per_request(moved, 100)
    assert {k: found[k] for k in expected} == expected
    if not moved:
        assert found == {}
    if "statements" not in moved and "Questions" not in moved:
        assert "statements_per_request" not in found  # unknown is absent, never 0


def test_slots_never_share_a_host_and_spread_the_requests() -> None:
    work = cost.Workload("http://x", "claim", hosts=1000, clients=3, threads=2, requests=100)
    assert sum(work.share(s) for s in range(work.slots)) == 100
    touched = [work.slot(s).host(n) for s in range(work.slots) for n in range(work.share(s))]
    assert len(set(touched)) == len(touched)
    consumers = tuple(f"c{i}" for i in range(10))
    split = [cost.Workload("http://x", "delete", 10, 2, 2, consumers=consumers).slot(s)
             for s in range(4)]  # fmt: skip
    assert sorted(c for slot in split for c in slot.consumers) == sorted(consumers)


def test_every_kind_is_registered_in_the_order_a_run_needs() -> None:
    names = list(REQUESTS)
    assert names.index("claim") < names.index("delete") and names[-1] == "register"
    assert {n for n, cls in REQUESTS.items() if cls.berth_only} == {"select", "host-state"}
    assert REQUESTS["register"].calls == 2
    assert cli_cost.kinds_of("usages,claim,delete") == ["claim", "delete", "usages"]
    for bad in ("delete", "claim,nope"):
        with pytest.raises(typer.BadParameter, match=r"claim|unknown"):
            cli_cost.kinds_of(bad)
    assert Slot(0, 1, 5).host(7) == Slot(0, 1, 5).host(2)


def _postgres_moves(url: str) -> None:
    counters = dbstats.counters_for(url)
    try:
        assert isinstance(counters, dbstats.PostgresCounters)
        before = counters.sample()
        db = Database(url)
        with db.write() as conn:
            conn.execute(text("CREATE TEMP TABLE cost_probe (x int)"))
            conn.execute(text("INSERT INTO cost_probe SELECT generate_series(1, 5)"))
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
        db.dispose()  # the backend ends: whatever it still held is published
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            moved = dbstats.delta(before, counters.sample(), 0.0)
            if moved["tup_inserted"] >= 5 and moved["xact_commit"] >= 1:
                break
            time.sleep(0.2)
        assert moved["tup_inserted"] >= 5 and moved["xact_commit"] >= 1
        assert "active_time" in moved
    finally:
        counters.close()


def _mariadb_moves(url: str) -> None:
    counters = dbstats.counters_for(url)
    try:
        assert isinstance(counters, dbstats.MariaDBCounters)
        assert counters.overhead["Questions"] >= 1  # a reading is a statement itself
        before = counters.sample()
        db = Database(url)
        with db.read() as conn:
            for _ in range(5):
                conn.execute(text("SELECT 1"))
        db.dispose()
        moved = dbstats.delta(before, counters.sample(), 0.0, None, counters.overhead)
        assert moved["Questions"] >= 5
    finally:
        counters.close()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_database_counters_move_with_the_work(backend: str) -> None:
    url = server_database_url(backend)
    assert url is not None
    (_postgres_moves if backend == "postgresql" else _mariadb_moves)(url)
    assert isinstance(dbstats.counters_for("sqlite:////tmp/x.sqlite"), dbstats.NoCounters)


def _bench(*args: str) -> str:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


@pytest.mark.slow  # a berth serve and three rounds of client processes: ~20 s
def test_cost_of_three_kinds_over_http(tmp_path: Path) -> None:
    out = str(tmp_path / "results.jsonl")
    _bench("cost", "--database-url", f"sqlite:///{tmp_path / 'berth.sqlite'}", "--out", out,
           "--hosts", "20", "--requests", "12", "--clients", "1", "--threads", "2",
           "--idle", "0.5", "--kinds", "candidates,claim,delete")  # fmt: skip
    lines = records.load([out])
    assert [x["settings"]["request"] for x in lines] == ["candidates", "claim", "delete"]
    for line in lines:
        r = line["result"]
        assert line["kind"] == "cost" and r["requests"] == 12 and r["errors"] == 0
        assert r["cpu_seconds"]["server"] > 0 and r["client_cpu_ms_per_request"] > 0
        # Net of the idle server's background (read for 0.5 s): 12 requests on a loaded
        # machine can be less than its noise, and the figure is then unknown, never 0.
        net = r.get("server_cpu_ms_per_request")
        assert net is None or net > 0, r
        assert "database" not in r["cpu_seconds"]  # SQLite runs inside the server
        assert "database_cpu_ms_per_request" not in r
        assert r["database_counters_from"] == "none" and not r["statements_counted"]
        assert line["conditions"]["server"] == "granian" and line["conditions"]["settings"] == {}
    text_ = report.render(lines)
    assert "## Cost per request (berth bench cost)" in text_
    assert "| berth (HTTP) | delete | 20 | 1x2 | granian x2 | sqlite |" in text_
