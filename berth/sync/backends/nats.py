"""The ``nats`` backend: a JetStream key-value bucket of changes, watched by every worker.

Writers put each change under its key (``h.<host>.<namespace>``,
``a.<aggregate>``) in the bucket named by the channel: history 1 (the newest
change of each key), in memory, each entry kept :data:`RETAIN_S` at most.
Each worker's listener subscribes to the bucket's stream with an ordered
consumer that delivers only what is put after it was made (a watch without
the initial values: the catalog loads those from the database); the
ordered consumer makes itself again when it sees a gap in the stream's
sequence.  A connection that fails (no answer to two pings a second apart,
or the server gone) ends the listener; the next connection makes a new
consumer, and the worker reads the change logs once (the new epoch).  The
bucket is made by whoever needs it first (again after a server restart: it
lives in memory).

nats-py is asyncio: each backend runs one event loop in a daemon thread,
shared by the writers (a facade that waits at most ``PUBLISH_TIMEOUT_S``) and
the listener.  It keeps its own connections rather than pull dispatch's
(:mod:`berth.pull.bus`): a listener must learn that its connection broke,
and ``berth.sync`` does not depend on ``berth.pull``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from berth.sync.changes import HOST, Change, decode
from berth.sync.protocol import PUBLISH_TIMEOUT_S, ListeningSync

log = structlog.get_logger("berth.sync.nats")

T = TypeVar("T")
DEFAULT_URL = "nats://127.0.0.1:4222"
RETAIN_S = 3600
TIMEOUT_S = 2.0
POLL_S = 0.2


def entry_key(change: Change) -> str:
    """The bucket key of a change."""
    if change.kind == HOST:
        return f"h.{change.key}.{change.namespace}"
    return f"a.{change.key}"


class NatsSync(ListeningSync):
    """A JetStream key-value bucket of changes (module docstring)."""

    name = "nats"

    def __init__(self, url: str = "", channel: str = "berth_host_state") -> None:
        super().__init__()
        self.url = url or DEFAULT_URL
        self.bucket = channel
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="berth-sync-nats-loop", daemon=True
        )
        self._loop_thread.start()
        self._writer: Client | None = None
        self._kv: KeyValue | None = None

    def _call(self, work: Callable[[], Awaitable[T]], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(_call(work), self._loop)
        try:
            return future.result(timeout)
        finally:
            future.cancel()

    # -- writers ----------------------------------------------------------------------
    def send(self, changes: Sequence[Change]) -> None:
        """Put every change, waiting for each one's acknowledgement."""
        self._call(lambda: self._put(changes), PUBLISH_TIMEOUT_S)

    async def _put(self, changes: Sequence[Change]) -> None:
        try:
            kv = await self._writer_kv()
            await asyncio.gather(*(kv.put(entry_key(c), c.encode()) for c in changes))
        except BaseException:
            await self._drop_writer()  # the next publish connects and finds the bucket again
            raise

    async def _writer_kv(self) -> KeyValue:
        if self._writer is None or not self._writer.is_connected or self._kv is None:
            await self._drop_writer()
            self._writer = await _connect(self.url)
            self._kv = await _bucket(self._writer.jetstream(timeout=TIMEOUT_S), self.bucket)
        return self._kv

    async def _drop_writer(self) -> None:
        writer, self._writer, self._kv = self._writer, None, None
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.close(), TIMEOUT_S)

    # -- the listener -----------------------------------------------------------------
    def listen(self, stop: threading.Event) -> None:
        """Run the watch on the loop until it fails or ``stop`` is set."""
        future = asyncio.run_coroutine_threadsafe(self._watch(stop), self._loop)
        try:
            future.result()
        finally:
            future.cancel()

    async def _watch(self, stop: threading.Event) -> None:
        gone = asyncio.Event()
        nc = await _connect(self.url, gone)
        try:
            js = nc.jetstream(timeout=TIMEOUT_S)
            await _bucket(js, self.bucket)

            async def on_message(msg: Msg) -> None:
                try:
                    self.deliver([decode(msg.data)])
                except ValueError:  # a purge or delete marker, or not ours
                    return

            await js.subscribe(
                f"$KV.{self.bucket}.>",
                stream=f"KV_{self.bucket}",
                cb=on_message,
                ordered_consumer=True,
                deliver_policy=js_api.DeliverPolicy.NEW,
            )
            self.joined()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), POLL_S)
                if gone.is_set() or not nc.is_connected:
                    raise ConnectionError(f"NATS connection to {self.url} lost")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), TIMEOUT_S)

    def close(self) -> None:
        """Stop listening, close the writers' connection, stop the loop."""
        super().close()
        with contextlib.suppress(Exception):
            self._call(self._drop_writer, TIMEOUT_S * 2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5.0)


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


async def _connect(url: str, gone: asyncio.Event | None = None) -> Client:
    """A connection that does not reconnect by itself and notices a dead server in ~2 s."""

    async def quiet(exc: Exception) -> None:
        log.debug("nats error", error=repr(exc))

    async def disconnected() -> None:
        if gone is not None:
            gone.set()

    connecting = nats.connect(
        servers=[url],
        connect_timeout=TIMEOUT_S,
        allow_reconnect=False,
        # A refused connect is tried once more, 0.1 s later, then fails (by default nats-py
        # tries 60 times, 2 s apart, before connect() returns).
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        ping_interval=1,
        max_outstanding_pings=2,
        error_cb=quiet,
        disconnected_cb=disconnected,
        closed_cb=disconnected,
    )
    return await asyncio.wait_for(connecting, TIMEOUT_S * 2)


async def _bucket(js: JetStreamContext, name: str) -> KeyValue:
    """The bucket, made if it is not there (another process may make it at the same time)."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        pass
    config = js_api.KeyValueConfig(
        bucket=name, history=1, ttl=RETAIN_S, storage=js_api.StorageType.MEMORY
    )
    try:
        return await js.create_key_value(config)
    except Exception:  # made by another process meanwhile
        return await js.key_value(name)
