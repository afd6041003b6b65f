"""Starting the lab's client processes together."""

from __future__ import annotations

from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier


def launch(procs: Sequence[BaseProcess], start: Barrier, what: str) -> None:
    """Start ``procs`` and meet them at ``start`` (RuntimeError if one never arrives).

    Cut short meanwhile (SIGINT, SIGTERM), it stops them too: a process still
    warming up would otherwise go on, and the interpreter's exit would wait for it.
    """
    for p in procs:
        p.start()
    try:
        start.wait(timeout=600)
    except BaseException as exc:
        for p in procs:
            p.terminate()
        if not isinstance(exc, Exception):
            raise
        raise RuntimeError(f"a {what} process failed to start (see its traceback)") from None
