"""The ``redis`` backend: one Redis stream of changes (``XADD``), read by every worker (``XREAD``).

Writers append one entry per change, ``{"c": <change>}``, in one pipelined
round trip, trimming the stream to about :data:`RETAIN` entries (``MAXLEN
~``: Redis trims whole nodes, so a little more is kept).  Each worker's
listener, on connecting, takes the stream's last id as its position and
then blocks in ``XREAD`` from it for at most :data:`BLOCK_S`, so an entry
appended between two reads is never skipped.  A failed read (the server
went away, or did not answer within its socket timeout) ends the
connection; the next one starts at the stream's end again and the worker
reads the change logs once (the new epoch).  The stream is not replayed
after a disconnect: entries the server never got (it was down) would be
missing from it anyway.

Needs the ``redis`` client (the ``sync`` extra).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import structlog
from redis import Redis

from berth.sync.changes import Change, decode
from berth.sync.protocol import PUBLISH_TIMEOUT_S, ListeningSync

log = structlog.get_logger("berth.sync.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
RETAIN = 100_000
BLOCK_S = 0.5
TIMEOUT_S = 2.0
READ_COUNT = 1000


class RedisSync(ListeningSync):
    """A Redis stream of changes (module docstring)."""

    name = "redis"

    def __init__(self, url: str = "", channel: str = "berth_host_state") -> None:
        super().__init__()
        self.url = url or DEFAULT_URL
        self.stream = channel
        # A pool of connections, safe to share between the request threads.
        self._writer = Redis.from_url(
            self.url, socket_timeout=PUBLISH_TIMEOUT_S, socket_connect_timeout=PUBLISH_TIMEOUT_S
        )

    def send(self, changes: Sequence[Change]) -> None:
        """Append the changes in one round trip."""
        pipe = self._writer.pipeline(transaction=False)
        for change in changes:
            pipe.xadd(self.stream, {"c": change.encode()}, maxlen=RETAIN, approximate=True)
        pipe.execute()

    def listen(self, stop: threading.Event) -> None:
        """From the stream's end: XREAD, deliver, again, until the connection fails."""
        client = Redis.from_url(
            self.url, socket_timeout=BLOCK_S + TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )
        try:
            last: Any = client.xrevrange(self.stream, count=1)
            position: bytes = last[0][0] if last else b"0-0"
            self.joined()
            while not stop.is_set():
                found: Any = client.xread(
                    {self.stream: position}, count=READ_COUNT, block=int(BLOCK_S * 1000)
                )
                for _stream, entries in found or []:
                    changes = []
                    for entry_id, fields in entries:
                        position = entry_id
                        try:
                            changes.append(decode(fields[b"c"]))
                        except (KeyError, ValueError) as exc:
                            log.warning("not a host state change", error=str(exc))
                    self.deliver(changes)
        finally:
            client.close()

    def close(self) -> None:
        """Stop listening, then close the writers' pool."""
        super().close()
        self._writer.close()
