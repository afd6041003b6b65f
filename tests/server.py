"""The tests' real berth servers: :mod:`berth.bench.launch`, from the repository's root."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from berth.bench.launch import free_port, serve

__all__ = ["ROOT", "free_port", "running_berth"]

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def running_berth(
    database_url: str | None = None,
    workers: int = 2,
    env: dict[str, str] | None = None,
    log_path: str | None = None,
) -> Iterator[str]:
    """Run ``berth serve`` on a free port; yield its base URL."""
    with serve(database_url, workers, env, log_path, cwd=ROOT) as server:
        yield server.url
