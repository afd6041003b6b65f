"""The tests' real berth servers: :func:`berth.bench.launch.serve`, from the repository's root."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from berth.bench.launch import free_port, serve

__all__ = ["ROOT", "free_port", "running_berth"]

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def running_berth(
    database_url: str | None = None, workers: int = 2, **options: Any
) -> Iterator[str]:
    """Run ``berth serve`` on a free port (``env=``, ``log_path=`` as for serve); its base URL."""
    with serve(database_url, workers, cwd=ROOT, **options) as server:
        yield server.url
