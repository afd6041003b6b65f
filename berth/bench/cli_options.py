"""What every ``berth bench`` command shares: its options, the console, writing a result line."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console

from berth.bench import records
from berth.bench.targets import Target

console = Console()

OUT = typer.Option("results.jsonl", "--out", help="Append every result as a JSON line here.")
TARGET = typer.Option(
    "serve",
    help="serve (berth serve started by the lab, default settings, over HTTP), inproc "
    "(berth in this process), reference or a Placement URL.",
)
SERVER_WORKERS = typer.Option(2, help="Worker processes of a berth the lab serves.")
SETTINGS = typer.Option(
    [],
    "--set",
    help="A berth setting, NAME=V1[,V2...]: one run per value, as BERTH_NAME for a served "
    "berth and an override in process (repeatable; e.g. --set scheduler_claim_batch=0,64).",
)
AGAINST = typer.Option([], help="More targets measured in the same run (repeatable).")
DATABASE = typer.Option("", help="berth's database URL (default: BERTH_DATABASE_URL).")


def emit(
    out: str,
    kind: str,
    target: Target,
    settings: dict[str, Any],
    result: dict[str, Any],
    conditions: dict[str, Any] | None = None,
) -> None:
    """Append one result line, with the target's conditions (or ``conditions``)."""
    found = conditions if conditions is not None else target.conditions()
    records.append(out, records.record(kind, target.name, settings, result, found))


def overrides(pairs: list[str]) -> list[dict[str, str]]:
    """``--set name=v1,v2`` options as one settings dict per combination."""
    combos: list[dict[str, str]] = [{}]
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--set wants NAME=VALUE[,VALUE...], got {pair!r}")
        key = name.strip().lower().removeprefix("berth_")
        combos = [{**c, key: v.strip()} for c in combos for v in values.split(",")]
    return combos


def as_env(settings: dict[str, Any]) -> dict[str, str]:
    """Settings as the ``BERTH_*`` variables a served berth reads."""
    return {f"BERTH_{name.upper()}": str(value) for name, value in settings.items()}


def _exit(signum: int, _frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block SIGTERM ends the command as Ctrl-C does: every ``finally`` runs, so
    the servers, hosts and namespaces it started are stopped and removed."""
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
