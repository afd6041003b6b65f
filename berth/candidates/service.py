"""Answer a candidates request: pick the filter mode, resolve, search, render.

``candidates_filter = "memory"`` (default) matches against this worker's
:class:`~berth.candidates.index.MemoryIndex`; ``"sql"`` matches in the
database per request (:mod:`berth.candidates.sql_source`); ``"python"``
reads every provider per request and matches in Python, the seed's "Python"
design (:mod:`berth.candidates.python_source`).  All hand the same engine a
universe and per-group matchers.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import orjson

from berth.candidates import bulk_reads, python_source, render, sql_source
from berth.candidates.index import MemoryIndex
from berth.candidates.matching import MemoryMatcher
from berth.candidates.plan import GroupPlan, Plan, resolve
from berth.candidates.request import CandidateRequest
from berth.candidates.results import Limits, Result, collect, group_is_empty
from berth.db import tables as t
from berth.db.engine import Database
from berth.services import Services


def empty() -> dict[str, Any]:
    """The body when nothing matches."""
    return {"allocation_requests": [], "provider_summaries": {}}


def answer(services: Services, request: CandidateRequest, shape: render.Shape) -> bytes:
    """The response body for ``request``, as JSON."""
    settings = services.settings
    limits = Limits(
        cap=settings.max_allocation_candidates,
        randomize=settings.randomize_allocation_candidates,
    )
    # The answer is a large acyclic structure: collecting while it is built (or
    # right after, while it is still alive) would only walk it for nothing.
    with _gc_paused():
        if settings.candidates_filter == "sql":
            body = _from_sql(services, request, shape, limits)
        elif settings.candidates_filter == "python":
            body = python_source.answer_body(services.db, request, shape, limits)
        else:
            body = _from_memory(services, request, shape, limits)
        data = orjson.dumps(body)
        del body
    return data


def _from_memory(
    services: Services, request: CandidateRequest, shape: render.Shape, limits: Limits
) -> dict[str, Any]:
    index = services.candidates_index
    index.refresh()  # before taking the lock: the refresh takes it to put its reads in place
    with index.lock:
        result = search_memory(index, request, limits)
        if result is None:
            return empty()
        return render.body(result, shape, index.class_names, index.trait_names)


def search_memory(index: MemoryIndex, request: CandidateRequest, limits: Limits) -> Result | None:
    """The in-memory design (None: empty answer); call with the index current and locked."""
    u = index.universe

    def alone_empty(plan: Plan, group: GroupPlan) -> bool:
        return group_is_empty(u, plan, group, MemoryMatcher(group))

    plan = resolve(request, index, alone_empty)
    if plan is None:
        return None
    return collect(u, plan, [MemoryMatcher(g) for g in plan.groups], limits)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic collection while a request builds its (acyclic) answer."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def search_sql(db: Database, request: CandidateRequest, limits: Limits) -> Result | None:
    """The SQL design end to end (None: empty answer)."""
    with db.read() as conn:
        catalog = sql_source.SqlCatalog(conn)

        def alone_empty(plan: Plan, group: GroupPlan) -> bool:
            alone = Plan(groups=[group], root_required=plan.root_required)
            alone.root_forbidden = plan.root_forbidden
            found = sql_source.matchers(conn, alone)
            return group_is_empty(sql_source.universe(conn, found), alone, group, found[0])

        plan = resolve(request, catalog, alone_empty)
        if plan is None:
            return None
        found = sql_source.matchers(conn, plan)
        return collect(sql_source.universe(conn, found), plan, found, limits)


def _from_sql(
    services: Services, request: CandidateRequest, shape: render.Shape, limits: Limits
) -> dict[str, Any]:
    result = search_sql(services.db, request, limits)
    if result is None:
        return empty()
    with services.db.read() as conn:
        classes = bulk_reads.names(conn, t.resource_classes)
        traits = bulk_reads.names(conn, t.traits)
    return render.body(result, shape, lambda ids: classes, traits)
