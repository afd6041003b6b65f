"""granian's command line with stop signals that always arrive: ``python -m berth.granian_main``.

granian (2.8) can miss a SIGINT or SIGTERM, and a granian process that misses
its stop signal never stops (measured: 2 stops in 3 hung after traffic):

* the main thread of the master and of each worker waits for an event with
  no timeout, and Python runs signal handlers only in the main thread, when
  that thread wakes up.  The kernel hands a process's signal to any thread
  that does not block it; when two come together (a Ctrl-C to the whole
  process group, then the master's own SIGTERM to its workers) one of
  granian's threads can take both, and the main thread sleeps on;
* a worker still loading the app runs the handler it inherited from the
  master, which does nothing in a worker: a stop in that second is lost;
* a worker's handler run a third time blocks for good (its shutdown channel
  holds one message and is read once).

So, run as granian's main, this module blocks SIGINT and SIGTERM in the
master's main thread before granian starts (every thread granian starts
inherits the mask, and so do the workers, forked from that thread) and starts,
in the master and again in each worker, one thread that waits for them
(``sigwait``) and calls the handler granian installed, once.  A signal that
comes before granian installed its handler finds nothing started that needs
to wind down: the process exits at once, as the signal's default would.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from granian.cli import entrypoint

STOP = {signal.SIGINT, signal.SIGTERM}


def relay() -> None:
    """Leave SIGINT and SIGTERM of this process to one thread that hands the first to granian."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP)  # this thread, and the threads it starts
    before = {signum: signal.getsignal(signum) for signum in STOP}
    threading.Thread(target=_deliver, args=(before,), name="berth-stop", daemon=True).start()


def _deliver(before: dict[int, Any]) -> None:
    """Wait for the stop signals; the first goes to granian's handler, the others nowhere."""
    signum = signal.sigwait(STOP)
    handler = signal.getsignal(signum)
    if handler is before[signum] or not callable(handler):
        os._exit(128 + signum)  # granian has not installed its handler yet
    handler(signum, None)
    while True:
        signal.sigwait(STOP)  # granian is stopping already


if __name__ == "__main__":
    relay()
    os.register_at_fork(after_in_child=relay)  # threads do not survive a fork: one per worker
    entrypoint()  # type: ignore[no-untyped-call]
