"""A rich progress bar per table for ``berth import``."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class RichProgress:
    """One bar per table, advanced as each batch commits."""

    def __init__(self, console: Console) -> None:
        self.bars = Progress(
            TextColumn("{task.description:<30}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bars.stop()

    def start(self, table: str, total: int) -> None:
        """Add the table's bar."""
        self.tasks[table] = self.bars.add_task(table, total=max(total, 1))
        if total == 0:
            self.bars.update(self.tasks[table], completed=1)

    def advance(self, table: str, rows: int) -> None:
        """Move the table's bar on by ``rows``."""
        self.bars.advance(self.tasks[table], rows)
