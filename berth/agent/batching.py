"""Many callers' items, one HTTP call per tick: the claims, actives and deletes of all queues.

A caller submits its items and awaits their results; the first item of a
tick schedules a flush ``delay`` seconds later (0: as soon as the callers
that are ready have run), which sends up to ``max_items`` in one call and
hands each caller the results for its own items, matched by instance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

Item = Mapping[str, Any]
Result = dict[str, Any]
Send = Callable[[Sequence[Item]], Awaitable[list[Result]]]


class Batcher:
    """Coalesces the items submitted in one tick into one call of ``send``."""

    def __init__(self, send: Send, delay: float = 0.0, max_items: int = 1000) -> None:
        self.send = send
        self.delay = delay
        self.max_items = max_items
        self.waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self.flusher: asyncio.Task[None] | None = None
        self.calls = 0  # how many calls were made (tests and stats)

    async def submit(self, items: Sequence[Item]) -> list[Result | BaseException]:
        """Send ``items`` with the others of this tick; their results, in order.

        An item whose call failed gets the exception ``send`` raised instead
        (items of one submit may travel in different calls).
        """
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self.waiting.extend(zip(items, futures, strict=True))
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush_soon())
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _flush_soon(self) -> None:
        """After the tick's delay, send everything waiting, ``max_items`` per call."""
        await asyncio.sleep(self.delay)
        while self.waiting:
            batch, self.waiting = self.waiting[: self.max_items], self.waiting[self.max_items :]
            await self._send(batch)

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        """One call; each future gets its instance's result (or the call's exception)."""
        self.calls += 1
        try:
            results = await self.send([item for item, _ in batch])
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        by_instance = {r.get("instance"): r for r in results}
        for item, fut in batch:
            if fut.done():
                continue
            result = by_instance.get(item["instance"])
            if result is None:
                fut.set_exception(LookupError(f"no result for instance {item['instance']}"))
            else:
                fut.set_result(result)
