"""Prometheus metrics that add up across worker processes.

``berth serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start, so every worker writes its samples there and
``GET /metrics`` (any worker) sums them.  Without that variable (tests,
in-process use) the metrics live in this process only.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Label values come from fixed sets only, never from what a client sends:
# ``route`` is the URL template (or "unmatched"), ``method`` one of
# HTTP_METHODS (else "other"), ``status`` the answer's code.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUESTS = Counter("berth_http_requests", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "berth_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
# ``operation``: the write retried (berth.placement.write.retry.atomically):
# allocations, reshaper, claims, server_groups, host_state,
# aggregate_metadata, catalog, providers, inventories, traits, aggregates,
# resource_classes, membership.
WRITE_RETRIES = Counter(
    "berth_write_retries", "Write transactions retried after a lost generation race", ["operation"]
)
WRITE_CONFLICTS = Counter(
    "berth_write_conflicts",
    "Writes answered 409 concurrent_update after exhausting retries",
    ["operation"],
)
# Host-state staleness: from the server's stamp of a write (``received_at``) to a worker
# applying it to its host catalog (berth.scheduler.staleness).  Finer below 1 s, where
# change-feed backends differ; up to 5 min, a worker that was long away.
STALENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
                     5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # fmt: skip
HOST_STATE_STALENESS = Histogram(
    "berth_host_state_staleness_seconds",
    "Time from the server receiving a host-state write to a worker applying it",
    buckets=STALENESS_BUCKETS,
)
DB_POOL_IN_USE = Gauge(
    "berth_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)


def method_label(method: str) -> str:
    """The ``method`` label: the method if it is a usual one, else "other"."""
    return method if method in HTTP_METHODS else "other"


def render() -> tuple[bytes, str]:
    """The exposition text for all workers, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def instrument_pool(engine: Engine) -> None:
    """Track checked-out connections of ``engine`` in ``DB_POOL_IN_USE``."""

    @event.listens_for(engine, "checkout")
    def _checkout(*_args: Any) -> None:
        DB_POOL_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _checkin(*_args: Any) -> None:
        DB_POOL_IN_USE.dec()
