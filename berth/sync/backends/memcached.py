"""The ``memcached`` backend (the original proposal's): a counter and one item per change.

memcached has no publish or subscribe, so changes are numbered:

* a writer takes ``n`` numbers with one ``incr <channel>:seq n`` (the counter
  is made, if missing, at a random number between 2**40 and 2**41, so a
  counter made again after a restart or an eviction is far from every
  worker's position) and stores each change as ``<channel>:c:<number>``,
  kept :data:`RETAIN_S` seconds (memcached may evict it sooner when full);
* each worker's listener reads the counter every :data:`POLL_S` and fetches
  the items between its position and the counter with ``get_multi``.

An item counted but not there yet (its writer is between ``incr`` and
``set``) is asked for again at the next polls; one still missing after
:data:`HOLE_WAIT_S` (the writer died, or memcached evicted it), a counter
that went missing or backwards, or one that moved by more than
:data:`MAX_JUMP` (a new counter, or a worker far behind) is a *gap*: a new
epoch, and the worker reads the change logs once.  A failed read (the
server went away) ends the connection; the next one starts at the counter.

Needs pymemcache (the ``sync`` extra).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import structlog
from pymemcache.client.base import Client

from berth.sync.changes import Change, decode
from berth.sync.protocol import PUBLISH_TIMEOUT_S, ListeningSync

log = structlog.get_logger("berth.sync.memcached")

DEFAULT_ADDRESS = "127.0.0.1:11211"
RETAIN_S = 300
POLL_S = 0.05
HOLE_WAIT_S = 2.0
MAX_JUMP = 10_000
FETCH = 500  # keys per get_multi
TIMEOUT_S = 1.0


def address(url: str) -> tuple[str, int]:
    """``host:port`` (or ``memcached://host:port``) as a (host, port) pair."""
    rest = (url or DEFAULT_ADDRESS).removeprefix("memcached://").rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"host_state_sync_url for memcached must be host:port, not {url!r}")
    return host, int(port)


class MemcachedSync(ListeningSync):
    """Numbered items in memcached (module docstring)."""

    name = "memcached"

    def __init__(self, url: str = "", channel: str = "berth_host_state") -> None:
        super().__init__()
        self.server = address(url)
        self.prefix = channel
        self._seq = f"{channel}:seq"
        self._writer = self._client(PUBLISH_TIMEOUT_S)
        self._writer_lock = threading.Lock()  # a pymemcache client is not thread-safe

    def _client(self, timeout: float = TIMEOUT_S) -> Client:
        return Client(self.server, connect_timeout=timeout, timeout=timeout, no_delay=True)

    def _item(self, number: int) -> str:
        return f"{self.prefix}:c:{number}"

    def send(self, changes: Sequence[Change]) -> None:
        """Number the changes, then store each under its number."""
        with self._writer_lock:
            top = self._take(self._writer, len(changes))
            first = top - len(changes) + 1
            items = {self._item(first + i): c.encode() for i, c in enumerate(changes)}
            failed = self._writer.set_many(items, expire=RETAIN_S, noreply=False)
        if failed:
            raise RuntimeError(f"memcached did not store {len(failed)} changes")

    def _take(self, client: Client, n: int) -> int:
        """The last of ``n`` new numbers (the counter made if missing)."""
        top = client.incr(self._seq, n, noreply=False)
        if top is None:
            client.add(self._seq, str(random.randrange(2**40, 2**41)), noreply=False)
            top = client.incr(self._seq, n, noreply=False)
            if top is None:
                raise RuntimeError("memcached lost the change counter as it was made")
        return int(top)

    def listen(self, stop: threading.Event) -> None:
        """Poll the counter; fetch and deliver the new items; a gap starts a new epoch."""
        client = self._client()
        try:
            position = self._take(client, 0)
            waiting: dict[int, float] = {}  # numbers counted, items not there yet
            self.joined()
            while not stop.wait(POLL_S):
                top = client.get(self._seq)
                if top is None or not position <= int(top) <= position + MAX_JUMP:
                    position = self._take(client, 0)
                    waiting = {}
                    self.gap()
                    continue
                waiting.update((n, time.monotonic()) for n in range(position + 1, int(top) + 1))
                position = int(top)
                self._fetch(client, waiting)
                if any(time.monotonic() - seen > HOLE_WAIT_S for seen in waiting.values()):
                    waiting = {}
                    self.gap()
        finally:
            client.close()

    def _fetch(self, client: Client, waiting: dict[int, float]) -> None:
        """Deliver the waited-for items that are there, in number order."""
        numbers = sorted(waiting)
        for start in range(0, len(numbers), FETCH):
            chunk = numbers[start : start + FETCH]
            found = client.get_many([self._item(n) for n in chunk])
            changes = []
            for n in chunk:
                data = found.get(self._item(n))
                if data is None:
                    continue
                del waiting[n]
                try:
                    changes.append(decode(data))
                except ValueError as exc:
                    log.warning("not a host state change", error=str(exc))
            if changes:
                self.deliver(changes)

    def close(self) -> None:
        """Stop listening, then close the writers' connection."""
        super().close()
        with self._writer_lock:
            self._writer.close()
