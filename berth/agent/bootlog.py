"""``--boot-log``: one line per boot started and per boot confirmed, for fault tests and audits.

Lines are ``boot <instance> <host uuid>`` when a claimed instance starts
booting and ``active <instance> <host uuid>`` when berth confirmed it
active.  The file is opened in append mode for every line (a few lines a
second in the tests that use it), so several agents may share one file:
each line is one ``write`` of less than a page, which O_APPEND keeps whole.
"""

from __future__ import annotations

from pathlib import Path


class BootLog:
    """Appends boot events to a file, or does nothing without one."""

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path) if path else None

    def record(self, event: str, instance: str, host: str) -> None:
        """Append ``<event> <instance> <host>`` (nothing when no file was given)."""
        if self.path is None:
            return
        with self.path.open("a", encoding="ascii") as out:
            out.write(f"{event} {instance} {host}\n")
