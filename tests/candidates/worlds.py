"""Hypothesis strategies for tiny provider worlds and candidate requests, and helpers
to write a world into a database and read engine results back as names."""

from __future__ import annotations

from hypothesis import strategies as st
from sqlalchemy import delete, update

from berth.bench.cloud import ProviderSpec
from berth.candidates.request import CandidateRequest, RequestGroup
from berth.candidates.results import Result
from berth.db import tables as t
from berth.db.engine import Database

from .brute import SHARING, Key

CLASSES = ["VCPU", "MEMORY_MB", "DISK_GB"]
TRAITS = ["CUSTOM_T1", "CUSTOM_T2", "CUSTOM_T3", SHARING]
AGGS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 4)]
# An aggregate nobody is in (but which exists).
EMPTY_AGG = "00000000-0000-0000-0000-000000000009"
SUFFIXES = ["1", "2", "_X"]


@st.composite
def inventories(draw: st.DrawFn) -> tuple[int, int, int, int, int, float]:
    total = draw(st.integers(1, 8))
    reserved = draw(st.sampled_from([0, 0, 0, 1]))
    min_unit = draw(st.sampled_from([1, 1, 1, 1, 1, 2]))
    max_unit = draw(st.sampled_from([8, 8, 8, 3, min_unit + 1]))
    step = draw(st.sampled_from([1, 1, 1, 1, 1, 2]))
    ratio = draw(st.sampled_from([1.0, 1.0, 1.0, 1.5, 2.0, 0.5]))
    return total, reserved, min_unit, max_unit, step, ratio


@st.composite
def worlds(draw: st.DrawFn, max_providers: int = 6) -> list[ProviderSpec]:
    """A few providers in trees, with inventories, usage, traits and aggregates."""
    n = draw(st.integers(2, max_providers))
    specs = []
    for i in range(n):
        parent = draw(st.none() | st.integers(0, i - 1)) if i else None
        classes = draw(st.sets(st.sampled_from(CLASSES), min_size=1, max_size=3))
        invs = {rc: draw(inventories()) for rc in sorted(classes)}
        used = {rc: draw(st.integers(0, 3)) for rc in sorted(classes) if _sometimes(draw, 3)}
        specs.append(
            ProviderSpec(
                uuid=f"10000000-0000-0000-0000-{i:012d}",
                name=f"p{i}",
                parent=parent,
                inventories=invs,
                used={rc: amount for rc, amount in used.items() if amount},
                traits=draw(st.sets(st.sampled_from(TRAITS), max_size=2)),
                aggregates=draw(st.sets(st.sampled_from(AGGS[:2]), max_size=2)),
            )
        )
    return specs


def _sometimes(draw: st.DrawFn, odds: int = 4) -> bool:
    """True about once in ``odds`` draws (constraints rarely, or nothing matches)."""
    return draw(st.integers(0, odds - 1)) == 0


def _group(
    draw: st.DrawFn, suffix: str, specs: list[ProviderSpec], resourceless: bool
) -> RequestGroup:
    group = RequestGroup(suffix)
    uuids = [spec.uuid for spec in specs]
    if not resourceless:
        # Mostly classes some provider has: requests for nothing teach little.
        present = sorted({rc for spec in specs for rc in spec.inventories}) or CLASSES
        pool = st.sampled_from(present) if not _sometimes(draw, 8) else st.sampled_from(CLASSES)
        group.resources = draw(
            st.dictionaries(pool, st.sampled_from([1, 1, 2]), min_size=1, max_size=2)
        )
    trait_sets = st.sets(st.sampled_from(TRAITS), min_size=1, max_size=2)
    if _sometimes(draw):
        group.required = draw(st.lists(trait_sets, min_size=1, max_size=2))
    if _sometimes(draw):
        group.forbidden = draw(st.sets(st.sampled_from(TRAITS), min_size=1, max_size=1))
    agg_sets = st.sets(st.sampled_from([*AGGS, EMPTY_AGG]), min_size=1, max_size=2)
    if _sometimes(draw):
        group.member_of = draw(st.lists(agg_sets, min_size=1, max_size=2))
    if _sometimes(draw, 6):
        group.forbidden_aggs = draw(st.sets(st.sampled_from(AGGS), min_size=1, max_size=1))
    if _sometimes(draw, 6):
        group.in_tree = draw(st.sampled_from(uuids))
    if resourceless and not (group.required or group.member_of or group.in_tree):
        group.required = [{draw(st.sampled_from(TRAITS))}]
    return group


@st.composite
def requests(draw: st.DrawFn, specs: list[ProviderSpec]) -> CandidateRequest:
    """A request with an optional unsuffixed group and up to two suffixed ones."""
    suffixes = draw(st.lists(st.sampled_from(SUFFIXES), unique=True, max_size=2))
    unsuffixed = draw(st.booleans()) or not suffixes
    groups: dict[str, RequestGroup] = {}
    same_subtrees: list[set[str]] = []
    if unsuffixed:
        groups[""] = _group(draw, "", specs, resourceless=False)
    for n, suffix in enumerate(suffixes):
        resourceless = bool(groups) and n > 0 and draw(st.booleans())
        groups[suffix] = _group(draw, suffix, specs, resourceless)
        if resourceless:
            same_subtrees.append({suffix, suffixes[0]})
    if len(suffixes) == 2 and not same_subtrees and draw(st.booleans()):
        same_subtrees.append(set(suffixes))
    # Put the unsuffixed group anywhere in the order (the query order).
    order = draw(st.permutations(list(groups)))
    return CandidateRequest(
        groups={suffix: groups[suffix] for suffix in order},
        group_policy=draw(st.sampled_from(["none", "isolate"])),
        root_required=draw(st.sets(st.sampled_from(TRAITS[:2]), max_size=1))
        if _sometimes(draw, 6)
        else set(),
        root_forbidden=draw(st.sets(st.sampled_from(TRAITS[2:]), max_size=1))
        if _sometimes(draw, 6)
        else set(),
        same_subtrees=same_subtrees,
        nested_aware=draw(st.booleans()) or draw(st.booleans()),
    )


def wipe(db: Database) -> None:
    """Remove every provider and what hangs off it (catalogues stay)."""
    with db.write() as conn:
        # MariaDB checks the self-references row by row: cut them first.
        rp = t.resource_providers
        conn.execute(update(rp).values(parent_provider_id=None, root_provider_id=None))
        for table in (
            t.allocations,
            t.inventories,
            t.resource_provider_traits,
            t.resource_provider_aggregates,
            t.placement_aggregates,
            t.resource_providers,
        ):
            conn.execute(delete(table))


def keys(result: Result | None) -> set[Key]:
    """An engine result as the oracle's keys (names instead of ids)."""
    if result is None:
        return set()
    providers = result.providers
    names = {0: "VCPU", 1: "MEMORY_MB", 2: "DISK_GB"}
    out = set()
    for c in result.candidates:
        amounts = frozenset((providers[p].uuid, names[rc], n) for (p, rc), n in c.amounts.items())
        mappings = frozenset(
            (suffix, frozenset(providers[p].uuid for p in pids))
            for suffix, pids in c.mappings.items()
        )
        out.add((amounts, mappings))
    return out
