"""What every ``berth bench`` command shares: its options, the console, writing a result line."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from berth.bench import records
from berth.bench.targets import Target

console = Console()

OUT = typer.Option("results.jsonl", "--out", help="Append every result as a JSON line here.")
TARGET = typer.Option("inproc", help="inproc, serve, reference or a Placement URL.")
AGAINST = typer.Option([], help="More targets measured in the same run (repeatable).")
DATABASE = typer.Option("", help="berth's database URL (default: BERTH_DATABASE_URL).")


def emit(
    out: str, kind: str, target: Target, settings: dict[str, Any], result: dict[str, Any]
) -> None:
    """Append one result line."""
    records.append(out, records.record(kind, target.name, settings, result))
