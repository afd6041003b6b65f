"""Rich progress bars for the lab's long steps, and a silent stand-in for tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]

console = Console(stderr=True)


@contextlib.contextmanager
def bar(description: str, total: float, enabled: bool = True) -> Iterator[Advance]:
    """A progress bar of ``total`` steps; yields ``advance(n)``."""
    if not enabled:
        yield lambda n: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(escape(description), total=total)
        yield lambda n: progress.advance(task, n)


@contextlib.contextmanager
def timed(description: str, seconds: float, enabled: bool = True) -> Iterator[Advance]:
    """A bar over a fixed duration: advance it by elapsed whole seconds."""
    with bar(f"{description} ({seconds:g}s)", int(seconds), enabled) as advance:
        yield advance


@contextlib.contextmanager
def clock(description: str, seconds: float, enabled: bool = True) -> Iterator[Advance]:
    """A bar over a fixed duration that any call moves to the time elapsed so far."""
    started = time.monotonic()
    shown = 0

    with bar(f"{description} ({seconds:g}s)", int(seconds), enabled) as advance:

        def tick(_: int) -> None:
            """Move the bar to the whole seconds elapsed."""
            nonlocal shown
            now = min(int(seconds), int(time.monotonic() - started))
            if now > shown:
                advance(now - shown)
                shown = now

        yield tick
