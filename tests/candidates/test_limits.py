"""limit, max_allocation_candidates and randomisation cut the full answer consistently."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fresh_database

from berth.bench.cloud import ProviderSpec, build, from_profile
from berth.bench.cloud_db import write
from berth.candidates import anchors, service
from berth.candidates.index import MemoryIndex
from berth.candidates.request import CandidateRequest, RequestGroup
from berth.candidates.results import Limits, Result

from .worlds import keys


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryIndex]:
    """A small cloud: 40 nodes plus one tree with two children."""
    db = fresh_database("sqlite", Path(tmp_path_factory.mktemp("limits")))
    tree = [
        ProviderSpec(uuid="40000000-0000-0000-0000-000000000000", name="root"),
        ProviderSpec(
            uuid="40000000-0000-0000-0000-000000000001",
            name="numa0",
            parent=0,
            inventories={"VCPU": (8, 0, 1, 8, 1, 1.0), "MEMORY_MB": (8192, 0, 1, 8192, 1, 1.0)},
        ),
        ProviderSpec(
            uuid="40000000-0000-0000-0000-000000000002",
            name="numa1",
            parent=0,
            inventories={"VCPU": (8, 0, 1, 8, 1, 1.0), "MEMORY_MB": (8192, 0, 1, 8192, 1, 1.0)},
        ),
    ]
    with db.write() as conn:
        write(conn, build(from_profile("candidates", 40)))
        write(conn, tree)
    idx = MemoryIndex(db)
    idx.refresh()
    yield idx
    db.dispose()


def _request(limit: int | None = None) -> CandidateRequest:
    group = RequestGroup("", resources={"VCPU": 1, "MEMORY_MB": 512})
    return CandidateRequest(groups={"": group}, limit=limit)


def _run(index: MemoryIndex, limit: int | None, limits: Limits = Limits()) -> Result:
    result = service.search_memory(index, _request(limit), limits)
    assert result is not None
    return result


def _summarised(result: Result) -> set[int]:
    return {p.id for p in result.summaries}


def test_limit_is_a_prefix_with_matching_summaries(index: MemoryIndex) -> None:
    full = _run(index, None)
    assert len(full.candidates) == 40 + 4  # the tree: 2 x 2 ways to place VCPU and memory
    for limit in (1, 7, 44, 100):
        cut = _run(index, limit)
        assert len(cut.candidates) == min(limit, 44)
        assert keys(cut) <= keys(full)
        roots = {index.universe.providers[p].root_id for c in cut.candidates for p, _ in c.amounts}
        members = {m for root in roots for m in index.universe.members[root]}
        assert _summarised(cut) == members


def test_cap_bounds_the_candidates_built(index: MemoryIndex) -> None:
    capped = _run(index, None, Limits(cap=5))
    assert len(capped.candidates) == 5
    assert keys(capped) <= keys(_run(index, None))


def test_randomised_answers_are_valid_and_vary(index: MemoryIndex) -> None:
    full = keys(_run(index, None))
    seen = set()
    for _ in range(20):
        cut = _run(index, 3, Limits(randomize=True))
        assert len(cut.candidates) == 3
        assert keys(cut) <= full
        seen |= keys(cut)
    assert len(seen) > 3
    assert keys(_run(index, None, Limits(randomize=True))) == full


@pytest.mark.parametrize("n", [1, 2, 7, 12, 97])
def test_shuffled_anchors_visit_each_once(n: int) -> None:
    items = list(range(100, 100 + n))
    assert sorted(anchors.shuffled(items)) == items
