"""``berth bench host-updates``: a tiny real run on PostgreSQL and MariaDB, then its refusals.

Both trees are this checkout (an older one is what operators pass; the run
only needs a berth package there): each writes metrics through its own
writer processes, a line per tree lands in ``--out``, and every database a
round created is gone afterwards.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from berth.cli import app
from tests.conftest import ADMIN_MYSQL_URL, ADMIN_POSTGRES_URL

ROOT = Path(__file__).resolve().parent.parent.parent


def _databases(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_schema_names()) if "mysql" in url else _pg_names(engine)
    finally:
        engine.dispose()


def _pg_names(engine: object) -> set[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return set(conn.execute(text("SELECT datname FROM pg_database")).scalars())


@pytest.mark.parametrize(
    "admin", [ADMIN_POSTGRES_URL, ADMIN_MYSQL_URL], ids=["postgresql", "mysql"]
)
def test_a_tiny_run_writes_a_line_per_tree_and_leaves_no_database(
    admin: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    before = _databases(admin)
    args = ["bench", "host-updates", "--before", str(ROOT), "--database-url", admin,
            "--writers", "2", "--hosts", "4", "--seconds", "0.5", "--rounds", "1",
            "--rtt-ms", "0", "--out", str(out)]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["kind"], x["conditions"]["tree"]) for x in lines] == [
        ("host-updates", "before"),
        ("host-updates", "after"),
    ]
    for line in lines:
        assert line["settings"] == {
            "writers": 2,
            "hosts": 4,
            "seconds": 0.5,
            "rounds": 1,
            "rtt_ms": 0.0,
        }
        result = line["result"]
        assert result["writes"] > 0 and result["updates_per_s"] == result["writes"] / 0.5
        assert result["p50_ms"] <= result["p99_ms"] and result["gave_up"] >= 0
    assert {
        name for name in _databases(admin) - before if name.startswith("berth_hostupdates")
    } == set()


def _said(output: str) -> str:
    """The error's words, without the box and the line breaks rich draws around them."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_refuses_what_it_cannot_measure(tmp_path: Path) -> None:
    runner = CliRunner()
    no_tree = runner.invoke(
        app,
        ["bench", "host-updates", "--before", str(tmp_path), "--database-url", ADMIN_POSTGRES_URL],
    )
    assert no_tree.exit_code == 2 and "holds no berth package" in _said(no_tree.output)
    sqlite = runner.invoke(
        app, ["bench", "host-updates", "--before", str(ROOT), "--database-url", "sqlite:///x.db"]
    )
    assert sqlite.exit_code == 2 and "PostgreSQL or MariaDB" in _said(sqlite.output)
