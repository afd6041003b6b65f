"""``berth host report``'s life: find the hosts, report until SIGINT, SIGTERM or --duration."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time

import orjson
import structlog

from berth.reporter.client import Refused, StateClient, Unavailable
from berth.reporter.options import ReportOptions
from berth.reporter.sender import HostReporter, Outage, Pace
from berth.reporter.simulate import real_reporter, simulated_reporters
from berth.reporter.stats import Stats

log = structlog.get_logger("berth.reporter")
_RNG = random.Random()  # backoff jitter while looking for the hosts


async def run(options: ReportOptions) -> int:
    """Report until a stop signal (or ``duration``); print the stats; the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = StateClient(options.url, options.token, options.timeout, options.concurrency)
    stats = Stats(interval=options.interval)
    try:
        reporters = await _reporters(client, options, stats, stop)
        if reporters is None:
            log.info("reporter.stopped_while_starting")
            return 0
        if not reporters:
            log.error("reporter.no_hosts", prefix=options.prefix)
            return 1
        await report_until(reporters, stats, stop, options.duration)
    except Refused as exc:
        log.error("reporter.cannot_start", error=str(exc))
        return 1
    finally:
        await client.close()
    sys.stdout.write(orjson.dumps(stats.summary()).decode() + "\n")
    sys.stdout.flush()
    log.info("reporter.stopped", **stats.summary())
    return 0


async def _reporters(
    client: StateClient, options: ReportOptions, stats: Stats, stop: asyncio.Event
) -> list[tuple[HostReporter, float]] | None:
    """The process's reporters and first delays (None: stopped before the server answered)."""
    limit = asyncio.Semaphore(options.concurrency)
    if options.host is not None:
        return [real_reporter(client, options, stats, limit)]
    uuids = await _providers(client, options, stop)
    if uuids is None:
        return None
    if 0 < len(uuids) < options.simulate:
        log.warning("reporter.fewer_hosts", wanted=options.simulate, found=len(uuids))
    return simulated_reporters(client, uuids, options, stats, limit)


async def _providers(
    client: StateClient, options: ReportOptions, stop: asyncio.Event
) -> list[str] | None:
    """The simulated hosts' uuids; waits out a server that is down (None: stopped first)."""
    outage, pace, failures = Outage(), Pace(max_backoff=options.max_backoff), 0
    while not stop.is_set():
        try:
            uuids = await client.providers(options.prefix, options.simulate)
            await client.prime(options.namespace, uuids)
        except Unavailable as exc:
            outage.down(str(exc))
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pace.backoff(failures, _RNG))
            continue
        outage.up()
        return uuids
    return None


async def report_until(
    reporters: list[tuple[HostReporter, float]],
    stats: Stats,
    stop: asyncio.Event,
    duration: float,
) -> None:
    """Run every reporter until ``stop`` (or ``duration`` seconds, if > 0); then cancel them
    (a send in flight is dropped)."""
    if duration > 0:
        asyncio.get_running_loop().call_later(duration, stop.set)
    stats.hosts = len(reporters)
    log.info("reporter.started", hosts=len(reporters), interval=stats.interval)
    stats.started = time.monotonic()
    tasks = [asyncio.create_task(r.run(delay)) for r, delay in reporters]
    try:
        await stop.wait()
    finally:
        # Cancel until all are done: Python 3.11's wait_for can swallow a cancellation that
        # comes as its inner call finishes, and a loop that missed one would never end.
        pending = set(tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
