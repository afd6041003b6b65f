"""A misbehaving agent for the fault tests: it heartbeats and claims, then never acks.

One host of its own (made through Placement), a thread with its own event
loop: every ``0.3`` s a heartbeat, and a fetch from the queue's consumer;
each message is claimed for its host (``taken`` is acked, ``full`` nak'ed) and
then, by ``mode``:

* ``stall``: nothing more (no active, no ack, no nak), as an agent whose
  boots hang while its heartbeat thread lives on;
* ``no-ack``: confirmed active, never acked, as an agent that loses its
  acks: JetStream delivers the message again after ``ack_wait``;
* ``hold``: fetches ``hold`` messages and then fetches no more; holds them
  without claiming, acking or sending in-progress acks (as an agent frozen
  for longer than ``ack_wait``: JetStream delivers them again to whoever
  fetches) until the test calls :meth:`Rogue.claim_late`; then claims each
  (its outcome in ``late``; one ``claimed`` is confirmed active) and acks
  its stale delivery whatever the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import Any

import httpx
import nats
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from tests.pull_faults.cloud import PLACEMENT, SCHEDULER

INVENTORY = {
    "VCPU": {"total": 8},
    "MEMORY_MB": {"total": 16384, "reserved": 1024},
    "DISK_GB": {"total": 100},
}
TICK_S = 0.3


class Rogue:
    """The misbehaving agent (see the module docstring); ``stop()`` ends its thread."""

    def __init__(self, base_url: str, nats_url: str, queue: str, mode: str, hold: int = 4) -> None:
        self.base_url, self.nats_url, self.queue, self.mode = base_url, nats_url, queue, mode
        self.hold = hold
        self.host = str(uuid.uuid4())
        self.claimed: set[str] = set()
        self.held: set[str] = set()  # hold mode: the instances of the messages held
        self.late: dict[str, str] = {}  # hold mode: instance -> the late claim's outcome
        self._late = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        """Make its host, then start heartbeating and claiming."""
        with httpx.Client(base_url=self.base_url, headers=PLACEMENT, timeout=30) as http:
            made = http.post("/resource_providers", json={"name": "rogue", "uuid": self.host})
            assert made.status_code in (200, 201), made.text
            body = {"resource_provider_generation": 0, "inventories": INVENTORY}
            put = http.put(f"/resource_providers/{self.host}/inventories", json=body)
            assert put.status_code == 200, put.text
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Its thread still runs (it did not die of an error)."""
        return self._thread.is_alive()

    def claim_late(self) -> None:
        """Hold mode: claim (and ack) the held messages now."""
        self._late.set()

    def stop(self) -> None:
        """Stop (and wait for) its thread."""
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1)
        headers = {**SCHEDULER, "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30) as http:
            try:
                sub = await nc.jetstream().pull_subscribe_bind(self.queue, stream="BERTH_WORK")
                if self.mode == "hold":
                    await self._hold(http, sub)
                while not self._stop.is_set():
                    await self._heartbeat(http)
                    if self.mode == "hold":
                        await asyncio.sleep(TICK_S)
                        continue
                    with contextlib.suppress(TimeoutError):  # nats-py raises asyncio's, the builtin
                        for msg in await sub.fetch(4, timeout=TICK_S):
                            outcome = await self._claim(http, orjson.loads(msg.data))
                            if outcome == "taken":
                                await msg.ack()
                            elif outcome != "claimed":  # only its own claims go unacked
                                await msg.nak(0.5)
            finally:
                await nc.close()

    async def _heartbeat(self, http: httpx.AsyncClient) -> None:
        await http.post("/scheduler/pull/heartbeat", json={"agent": "rogue", "hosts": [self.host]})

    async def _hold(self, http: httpx.AsyncClient, sub: JetStreamContext.PullSubscription) -> None:
        """Fetch ``hold`` messages, sit on them until told, then claim each and ack."""
        held: list[Msg] = []
        while len(held) < self.hold and not self._stop.is_set():
            await self._heartbeat(http)
            with contextlib.suppress(TimeoutError):
                held += await sub.fetch(self.hold - len(held), timeout=TICK_S)
            self.held.update(orjson.loads(m.data)["instance"] for m in held)
        while not self._late.is_set() and not self._stop.is_set():
            await self._heartbeat(http)
            await asyncio.sleep(TICK_S)
        for msg in held if self._late.is_set() else []:
            job = orjson.loads(msg.data)
            self.late[job["instance"]] = await self._claim(http, job)
            await msg.ack()

    async def _claim(self, http: httpx.AsyncClient, job: dict[str, Any]) -> str:
        """Claim the job for this host; confirm it active unless stalling; the outcome."""
        item = {"instance": job["instance"], "host": self.host, "attempt": job["attempt"]}
        got = await http.post("/scheduler/pull/claims", json={"claims": [item]})
        outcome = str(got.json()["results"][0]["outcome"])
        if outcome != "claimed":
            return outcome
        self.claimed.add(job["instance"])
        if self.mode != "stall":
            body = {"instances": [{"instance": job["instance"], "host": self.host}]}
            await http.post("/scheduler/pull/active", json=body)
        return outcome
