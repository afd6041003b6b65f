"""Both filter designs return exactly what a brute-force oracle returns.

For random tiny worlds (provider trees, inventories with usage, traits,
aggregates, sharing providers) and random requests (unsuffixed and suffixed
groups, resourceless groups, traits any-of and forbidden, member_of and
forbidden aggregates, in_tree, group_policy, same_subtree, root_required,
microversions before and after 1.29), the in-memory index and the SQL path
produce the same set of candidates as :mod:`brute` (order ignored, no limit).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BACKENDS, fresh_database
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from sqlalchemy import insert, select

from berth.bench.cloud import ProviderSpec
from berth.bench.cloud_db import write
from berth.candidates import service
from berth.candidates.index import MemoryIndex
from berth.candidates.request import CandidateRequest
from berth.candidates.results import Limits
from berth.db import tables as t
from berth.db.engine import Database

from . import brute
from .worlds import EMPTY_AGG, TRAITS, keys, requests, wipe, worlds

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", params=BACKENDS)
def world_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """One database per backend, refilled for every example."""
    db = fresh_database(request.param, Path(tmp_path_factory.mktemp("worlds")))
    yield db
    db.dispose()


def _store(db: Database, specs: list[ProviderSpec]) -> None:
    wipe(db)
    with db.write() as conn:
        write(conn, specs)
        # Every trait a request may name exists, even when no provider has it.
        have = set(conn.execute(select(t.traits.c.name)).scalars())
        for name in sorted(set(TRAITS) - have):
            conn.execute(insert(t.traits).values(name=name))
        agg = t.placement_aggregates
        if conn.execute(select(agg.c.id).where(agg.c.uuid == EMPTY_AGG)).first() is None:
            conn.execute(insert(agg).values(uuid=EMPTY_AGG))


Case = tuple[list[ProviderSpec], list[CandidateRequest]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """One world and a few requests against it (writing the world is the slow part)."""
    specs = draw(worlds())
    return specs, [draw(requests(specs)) for _ in range(4)]


def _expected(specs: list[ProviderSpec], batch: list[CandidateRequest]) -> list[set[brute.Key]]:
    expected = [brute.candidates(specs, request) for request in batch]
    # Steer generation towards requests with many (multi-provider) answers.
    target(float(sum(len(found) for found in expected)), label="candidates")
    allocations = sum(len(amounts) for found in expected for amounts, _ in found)
    target(float(allocations), label="allocations")
    return expected


@SETTINGS
@given(case=cases())
def test_memory_and_sql_match_brute_force(world_db: Database, case: Case) -> None:
    """Each request of the case gets the oracle's candidates from both designs.

    One world serves both (writing it is most of an example's cost), and one index
    refreshed once serves the case's requests, as a worker's index serves many.
    """
    specs, batch = case
    _store(world_db, specs)
    index = MemoryIndex(world_db)
    index.refresh()
    for request, expected in zip(batch, _expected(specs, batch), strict=True):
        memory = keys(service.search_memory(index, request, Limits()))
        assert memory == expected, ("memory", request)
        assert keys(service.search_sql(world_db, request, Limits())) == expected, ("sql", request)
