"""The NATS side of pull dispatch: one connection per process, driven from plain threads.

nats-py is asyncio; berth's request threads and its sweeper are not.  A
:class:`Bus` runs one event loop in a daemon thread of its own, connects on
first use, and offers a small synchronous facade: publish with a
``Nats-Msg-Id``, key-value put/delete/read, ensure a stream or a consumer,
count a stream's messages per subject.
Every call waits at most ``nats_timeout_s`` and raises
:class:`~berth.placement.errors.Unavailable` when NATS cannot be reached:
callers decide what that means (an outbox row stays unpublished, a route
answers 503).  After a failed connect, NATS is not tried again for
``nats_retry_s``, so a server that is down costs each request nothing.

Lifetime: :class:`berth.services.Services` builds one per process on first
use (a forked child builds its own: the parent's loop thread does not
exist there) and :meth:`close` stops it with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from berth.placement import errors
from berth.pull.messages import DUPLICATE, FAILED, STORED, Message

log = structlog.get_logger("berth.pull.bus")

T = TypeVar("T")
# Messages in flight at once while publishing a batch (each waits for its stream ack).
PUBLISH_WINDOW = 256


class Bus:
    """A process's NATS connection with a synchronous facade (see the module docstring)."""

    def __init__(self, url: str, timeout_s: float, retry_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="berth-nats")
        self._thread.daemon = True
        self._thread.start()
        self._nc: Client | None = None
        self._failed_at = -float("inf")
        self._closed = False

    # -- the loop ------------------------------------------------------------------------
    def _run(self, work: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``work()`` on the loop; Unavailable when it fails to reach NATS in time."""
        if self._closed:
            raise errors.Unavailable("The NATS connection of this process is closed.")
        budget = timeout if timeout is not None else self.timeout_s * 2
        future = asyncio.run_coroutine_threadsafe(_call(work), self._loop)
        try:
            return future.result(budget)
        except (FutureTimeout, TimeoutError):
            future.cancel()
            raise errors.Unavailable(f"NATS at {self.url} did not answer in time.") from None
        except (nats.errors.Error, OSError) as exc:
            raise errors.Unavailable(f"NATS at {self.url} cannot be used: {exc!r}") from None

    async def _client(self) -> Client:
        nc = self._nc
        if nc is not None and nc.is_connected:
            return nc
        if nc is not None and not nc.is_closed:  # reconnecting: do not wait for it
            raise errors.Unavailable(f"NATS at {self.url} is reconnecting.")
        if time.monotonic() - self._failed_at < self.retry_s:
            raise errors.Unavailable(f"NATS at {self.url} was unreachable moments ago.")
        try:
            self._nc = await asyncio.wait_for(self._connect(), self.timeout_s)
        except Exception as exc:
            self._failed_at = time.monotonic()
            log.warning("nats unreachable", url=self.url, error=repr(exc))
            raise errors.Unavailable(f"NATS at {self.url} is unreachable: {exc!r}") from None
        return self._nc

    async def _connect(self) -> Client:
        async def quiet(exc: Exception) -> None:
            log.debug("nats error", error=repr(exc))

        return await nats.connect(
            servers=[self.url],
            connect_timeout=max(1, round(self.timeout_s)),
            max_reconnect_attempts=1,  # then closed; the next call connects afresh
            reconnect_time_wait=0.5,
            error_cb=quiet,
        )

    async def _js(self) -> JetStreamContext:
        return (await self._client()).jetstream(timeout=self.timeout_s)

    # -- the facade ----------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish ``messages`` to JetStream; per message STORED, DUPLICATE (a stream had it
        already) or FAILED.  Unavailable when NATS cannot be reached at all."""

        async def send() -> list[str]:
            js = await self._js()
            done: list[str] = []
            for start in range(0, len(messages), PUBLISH_WINDOW):
                window = messages[start : start + PUBLISH_WINDOW]
                acks = await asyncio.gather(
                    *(
                        js.publish(m.subject, m.data, headers={"Nats-Msg-Id": m.msg_id})
                        for m in window
                    ),
                    return_exceptions=True,
                )
                done += [
                    FAILED if isinstance(a, BaseException) else DUPLICATE if a.duplicate else STORED
                    for a in acks
                ]
            return done

        rounds = 1 + len(messages) // PUBLISH_WINDOW
        return self._run(send, self.timeout_s * (rounds + 1))

    def ensure_stream(
        self, config: js_api.StreamConfig, update: bool = False
    ) -> datetime.datetime | None:
        """Create the stream when it is missing (with ``update``, else update it to
        ``config``); when it was created (another time than before: it was made again)."""

        async def ensure() -> datetime.datetime | None:
            js = await self._js()
            try:
                info = await js.stream_info(str(config.name))
            except NotFoundError:
                return (await js.add_stream(config)).created
            if update:
                try:
                    await js.update_stream(config)
                except APIError as exc:  # e.g. made by someone else with another retention
                    log.warning("stream config not updated", stream=config.name, error=repr(exc))
            return info.created

        return self._run(ensure)

    def subject_counts(self, stream: str, subjects: str) -> dict[str, int]:
        """How many messages the stream holds on each subject matching ``subjects`` (a
        filter such as ``berth.work.>``; subjects without messages are not listed; no such
        stream: nothing)."""

        async def counts() -> dict[str, int]:
            try:
                info = await (await self._js()).stream_info(stream, subjects_filter=subjects)
            except NotFoundError:
                return {}
            return dict(info.state.subjects or {})

        return self._run(counts)

    def ensure_consumer(self, stream: str, config: js_api.ConsumerConfig) -> None:
        """Create the durable consumer unless it exists (an existing one is left as it is,
        whatever its config: an agent may have made it)."""

        async def ensure() -> None:
            js = await self._js()
            try:
                await js.consumer_info(stream, str(config.durable_name))
            except NotFoundError:
                await js.add_consumer(stream, config)

        self._run(ensure)

    def consumer_names(self, stream: str) -> list[str]:
        """The names of the stream's consumers."""

        async def names() -> list[str]:
            infos = await (await self._js()).consumers_info(stream)
            return [str(info.name) for info in infos]

        return self._run(names)

    def delete_consumer(self, stream: str, name: str) -> None:
        """Delete a consumer (gone already: nothing to do)."""

        async def delete() -> None:
            with contextlib.suppress(NotFoundError):
                await (await self._js()).delete_consumer(stream, name)

        self._run(delete)

    async def _bucket(self, bucket: str) -> KeyValue:
        js = await self._js()
        try:
            return await js.key_value(bucket)
        except BucketNotFoundError:
            config = js_api.KeyValueConfig(
                bucket=bucket, history=1, storage=js_api.StorageType.FILE
            )
            return await js.create_key_value(config)

    def kv_items(self, bucket: str) -> dict[str, bytes]:
        """Every key of the bucket with its value (the bucket is created if missing)."""

        async def items() -> dict[str, bytes]:
            kv = await self._bucket(bucket)
            found: dict[str, bytes] = {}
            try:
                keys = await kv.keys()
            except nats.js.errors.NoKeysError:
                return found
            for key in keys:
                try:
                    entry = await kv.get(key)
                except KeyNotFoundError:
                    continue
                found[key] = entry.value or b""
            return found

        return self._run(items)

    def kv_put(self, bucket: str, key: str, value: bytes) -> None:
        """Put ``key`` = ``value`` in the bucket."""

        async def put() -> None:
            await (await self._bucket(bucket)).put(key, value)

        self._run(put)

    def kv_delete(self, bucket: str, key: str) -> None:
        """Delete ``key`` from the bucket."""

        async def delete() -> None:
            await (await self._bucket(bucket)).delete(key)

        self._run(delete)

    def close(self) -> None:
        """Drain the connection and stop the loop thread."""
        if self._closed:
            return
        self._closed = True

        async def drain() -> None:
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()

        try:
            asyncio.run_coroutine_threadsafe(drain(), self._loop).result(self.timeout_s)
        except Exception as exc:  # closing anyway
            log.debug("nats close", error=repr(exc))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout_s)
        if not self._thread.is_alive():
            self._loop.close()


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
