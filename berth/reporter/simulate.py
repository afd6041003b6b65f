"""The reporters of one process: one real host, or N simulated ones spread over the interval."""

from __future__ import annotations

import asyncio
import random

from berth.reporter.client import StateClient
from berth.reporter.metrics import ProcMetrics, SyntheticMetrics
from berth.reporter.options import ReportOptions
from berth.reporter.sender import HostReporter, Outage, Pace
from berth.reporter.stats import Stats

FIRST_REAL_SEND = 1.0  # seconds: the first cpu_util is measured over this much time


def pace(options: ReportOptions) -> Pace:
    """The options' interval, jitter and backoff."""
    return Pace(options.interval, options.jitter, options.max_backoff)


def real_reporter(
    client: StateClient, options: ReportOptions, stats: Stats, limit: asyncio.Semaphore
) -> tuple[HostReporter, float]:
    """This machine's reporter (/proc metrics) and its first delay."""
    assert options.host is not None
    reporter = HostReporter(
        client, options.host, options.namespace, ProcMetrics(options.disk_path),
        pace(options), stats, Outage(), limit,
    )  # fmt: skip
    return reporter, min(FIRST_REAL_SEND, options.interval)


def simulated_reporters(
    client: StateClient,
    uuids: list[str],
    options: ReportOptions,
    stats: Stats,
    limit: asyncio.Semaphore,
) -> list[tuple[HostReporter, float]]:
    """One reporter per host with synthetic metrics; host i first sends at i/N of the
    interval, so the process sends evenly, not in bursts."""
    outage = Outage()
    count = len(uuids)
    rng = random.Random(options.seed)
    reporters = []
    for index, uuid in enumerate(uuids):
        reporter = HostReporter(
            client, uuid, options.namespace, SyntheticMetrics(index, options.seed),
            pace(options), stats, outage, limit, random.Random(rng.random()),
        )  # fmt: skip
        reporters.append((reporter, options.interval * index / count))
    return reporters
