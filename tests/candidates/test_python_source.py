"""candidates_filter = "python" (every provider read per request) answers as the memory mode does.

On a small cloud with a tree and a sharing pool the two modes give the same
response body byte for byte, for a mix of requests and microversions; on
random tiny worlds the Python mode agrees with the brute-force oracle, as
the other two modes do in test_properties.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import fresh_database
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth import settings as settings_mod
from berth.bench.cloud import ProviderSpec, aggregate_uuid, build, from_profile
from berth.bench.cloud_db import write
from berth.candidates import python_source, render, service
from berth.candidates.request import CandidateRequest, RequestGroup
from berth.candidates.results import Limits
from berth.db.engine import Database
from berth.services import Services

from . import brute
from .test_properties import _store
from .worlds import keys, requests, worlds

POOL_AGG = "50000000-0000-0000-0000-0000000000aa"


def _small_cloud() -> list[ProviderSpec]:
    """30 candidates-profile hosts, one NUMA tree, one sharing disk pool with two members."""
    specs = build(from_profile("candidates", 30))
    specs[0].aggregates.add(POOL_AGG)
    specs[1].aggregates.add(POOL_AGG)
    return [
        *specs,
        ProviderSpec(uuid="50000000-0000-0000-0000-000000000000", name="tree"),
        ProviderSpec(
            uuid="50000000-0000-0000-0000-000000000001",
            name="tree-numa0",
            parent=30,
            inventories={"VCPU": (8, 0, 1, 8, 1, 1.0), "MEMORY_MB": (8192, 0, 1, 8192, 1, 1.0)},
            traits={"HW_NUMA_ROOT"},
        ),
        ProviderSpec(
            uuid="50000000-0000-0000-0000-000000000002",
            name="pool",
            inventories={"DISK_GB": (10000, 0, 1, 10000, 1, 1.0)},
            traits={"MISC_SHARES_VIA_AGGREGATE"},
            aggregates={POOL_AGG},
        ),
    ]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Services over a SQLite database holding the small cloud."""
    path = Path(tmp_path_factory.mktemp("python-source"))
    db = fresh_database("sqlite", path)
    with db.write() as conn:
        write(conn, _small_cloud())
    url = str(db.engine.url)
    db.dispose()
    found = Services.from_settings(settings_mod.load(environ={}, database_url=url))
    yield found
    found.close()


def _group(resources: dict[str, int], **kw: Any) -> dict[str, RequestGroup]:
    return {"": RequestGroup("", resources=resources, **kw)}


REQUESTS = {
    "limit": CandidateRequest(
        groups=_group({"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}), limit=50
    ),
    "all": CandidateRequest(groups=_group({"VCPU": 2, "MEMORY_MB": 4096})),
    "trait": CandidateRequest(groups=_group({"VCPU": 1}, required=[{"CUSTOM_GPU"}]), limit=5),
    "member_of": CandidateRequest(groups=_group({"VCPU": 1}, member_of=[{aggregate_uuid(3)}])),
    "unknown trait": CandidateRequest(groups=_group({"VCPU": 1}, required=[{"CUSTOM_NOPE"}])),
    "too big": CandidateRequest(groups=_group({"VCPU": 100000})),
}


@pytest.mark.parametrize("minor", [10, 29, 36])
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_same_body_as_the_memory_mode(services: Services, name: str, minor: int) -> None:
    request, shape = REQUESTS[name], render.Shape.at(minor)
    memory = _answer(services, "memory", request, shape)
    python = _answer(services, "python", request, shape)
    assert python == memory
    if name in ("limit", "all", "trait", "member_of"):
        assert isinstance(memory, bytes) and orjson.loads(memory)["allocation_requests"]


def _answer(
    services: Services, mode: str, request: CandidateRequest, shape: render.Shape
) -> bytes | str:
    chosen = dataclasses.replace(services.settings, candidates_filter=mode)
    view = dataclasses.replace(services, settings=chosen)
    try:
        return service.answer(view, request, shape)
    except Exception as exc:  # an unknown name is an error in both modes alike
        return f"{type(exc).__name__}: {exc}"


def test_sharing_pool_and_tree_are_found(services: Services) -> None:
    request = CandidateRequest(groups=_group({"VCPU": 1, "DISK_GB": 10}))
    found = python_source.search_python(services.db, request, Limits())
    assert found is not None
    pool = next(p for p in found.providers.values() if p.uuid.endswith("0002"))
    assert any(any(pid == pool.id for pid, _ in c.amounts) for c in found.candidates)


def test_the_setting_accepts_python() -> None:
    assert settings_mod.load(environ={"BERTH_CANDIDATES_FILTER": "python"}).candidates_filter
    with pytest.raises(ValueError, match="memory, sql or python"):
        settings_mod.load(environ={"BERTH_CANDIDATES_FILTER": "excel"})


@pytest.fixture(scope="module")
def world_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One SQLite database, refilled for every example."""
    db = fresh_database("sqlite", Path(tmp_path_factory.mktemp("python-worlds")))
    yield db
    db.dispose()


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[ProviderSpec], list[CandidateRequest]]:
    specs = draw(worlds())
    return specs, [draw(requests(specs)) for _ in range(3)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_cases())
def test_python_matches_brute_force(
    world_db: Database, case: tuple[list[ProviderSpec], list[CandidateRequest]]
) -> None:
    specs, batch = case
    _store(world_db, specs)
    for request in batch:
        found = keys(python_source.search_python(world_db, request, Limits()))
        assert found == brute.candidates(specs, request), request
