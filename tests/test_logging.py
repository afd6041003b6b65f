"""Log lines stay whole when several processes and threads share one stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Each process logs from two threads through structlog and from a third through the
# standard library, as a granian worker does (berth's events, granian's own lines).
WRITER = """
import logging, sys, threading
import structlog
from berth.logging import configure
from berth.settings import Settings

configure(Settings(log_json=True))
log = structlog.get_logger("t")

def structured(n):
    for i in range(1500):
        log.info("event", n=n, i=i, pad="x" * (i % 300))

def plain():
    for i in range(1500):
        logging.getLogger("plain").warning('{"plain": %d}', i)

threads = [threading.Thread(target=structured, args=(n,)) for n in range(2)]
threads.append(threading.Thread(target=plain))
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_lines_from_processes_and_threads_never_interleave(tmp_path: Path) -> None:
    """Four processes, three threads each, one shared stderr file: every line is one
    JSON object (a line torn by another writer is what broke parsing server logs)."""
    log = tmp_path / "shared.log"
    with log.open("ab") as out:
        procs = [subprocess.Popen([sys.executable, "-c", WRITER], stderr=out) for _ in range(4)]
        for p in procs:
            assert p.wait(timeout=120) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 4 * 3 * 1500
    for line in lines:
        json.loads(line)
