"""Traits: catalogue, filters, custom create/delete, provider trait sets and generations."""

from __future__ import annotations

import uuid

import os_traits
import pytest
from sqlalchemy import select

from berth.db import tables as t
from berth.db.engine import Database
from berth.placement import errors, providers
from berth.placement import traits as tr
from berth.placement.traits import TraitFilter
from tests.helpers import refusal


def _provider(db: Database) -> str:
    rp_uuid = str(uuid.uuid4())
    with db.write() as conn:
        conn.execute(t.resource_providers.insert().values(uuid=rp_uuid, name=None, generation=0))
    return rp_uuid


def _state(db: Database, rp_uuid: str) -> tuple[int, list[str]]:
    """A provider's generation and trait names."""
    with db.read() as conn:
        provider = providers.get_provider(conn, rp_uuid)
        return provider.generation, [x.name for x in tr.provider_traits(conn, provider.id)]


def _custom(db: Database, *names: str) -> None:
    with db.write() as conn:
        for name in names:
            tr.ensure_trait(conn, name)


def _trait_count(db: Database) -> int:
    with db.read() as conn:
        return len(tr.list_traits(conn))


def _associations(db: Database) -> list[tuple[int, int]]:
    with db.read() as conn:
        rows = conn.execute(select(t.resource_provider_traits)).all()
    return sorted((r.resource_provider_id, r.trait_id) for r in rows)


def test_standard_traits_are_all_there(db: Database) -> None:
    with db.read() as conn:
        names = {x.name for x in tr.list_traits(conn)}
    assert names == set(os_traits.get_traits())


def test_ensure_creates_once(db: Database) -> None:
    with db.write() as conn:
        first, created = tr.ensure_trait(conn, "CUSTOM_ONE")
        again, created_again = tr.ensure_trait(conn, "CUSTOM_ONE")
    assert (created, created_again) == (True, False)
    assert first.id == again.id and first.created_at is not None and first.custom


def test_lookups_are_case_sensitive(db: Database) -> None:
    _custom(db, "CUSTOM_CASE")
    with db.read() as conn:
        assert tr.find_trait(conn, "custom_case") is None
        with pytest.raises(errors.NotFound):
            tr.trait_ids(conn, ["custom_case"])
    with pytest.raises(errors.NotFound), db.write() as conn:
        tr.delete_trait(conn, "custom_case")
    with db.read() as conn:
        assert tr.find_trait(conn, "CUSTOM_CASE") is not None


def test_ensure_refuses_standard_names(db: Database) -> None:
    with pytest.raises(errors.InvalidInput), db.write() as conn:
        tr.ensure_trait(conn, "HW_CPU_X86_AVX")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (TraitFilter(names=["CUSTOM_A", "CUSTOM_B", "CUSTOM_NOPE"]), ["CUSTOM_A", "CUSTOM_B"]),
        (TraitFilter(names=[]), []),
        (TraitFilter(prefix="CUSTOM_A"), ["CUSTOM_A", "CUSTOM_AB"]),
        # "_" is not a wildcard: CUSTOMXA must not match "CUSTOM_A".
        (TraitFilter(prefix="CUSTOM"), ["CUSTOMXA", "CUSTOM_A", "CUSTOM_AB", "CUSTOM_B"]),
        (TraitFilter(prefix="CUSTOM_", associated=True), ["CUSTOM_A"]),
        (TraitFilter(prefix="CUSTOM_", associated=False), ["CUSTOM_AB", "CUSTOM_B"]),
        (TraitFilter(names=["CUSTOM_B"], associated=True), []),
        # Names are case-sensitive on every backend.
        (TraitFilter(names=["custom_a"]), []),
        (TraitFilter(prefix="custom_"), []),
    ],
)
def test_list_filters(db: Database, filters: TraitFilter, expected: list[str]) -> None:
    # CUSTOMXA cannot be created through the API; it probes LIKE escaping.
    with db.write() as conn:
        conn.execute(t.traits.insert().values(name="CUSTOMXA"))
    _custom(db, "CUSTOM_A", "CUSTOM_AB", "CUSTOM_B")
    rp = _provider(db)
    with db.write() as conn:
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), ["CUSTOM_A"], 0)
    with db.read() as conn:
        names = sorted(x.name for x in tr.list_traits(conn, filters))
    assert names == sorted(expected)


def test_trait_ids_names_every_missing_trait(db: Database) -> None:
    _custom(db, "CUSTOM_A")
    with db.read() as conn:
        assert set(tr.trait_ids(conn, ["CUSTOM_A", "HW_CPU_X86_SSE"])) == {
            "CUSTOM_A",
            "HW_CPU_X86_SSE",
        }
        with pytest.raises(errors.NotFound) as caught:
            tr.trait_ids(conn, ["CUSTOM_A", "CUSTOM_Z", "CUSTOM_Y"])
    assert caught.value.message == "No such trait(s): CUSTOM_Y, CUSTOM_Z."


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("HW_CPU_X86_SSE", errors.InvalidInput, "Cannot delete standard trait HW_CPU_X86_SSE."),
        ("CUSTOM_USED", errors.Conflict, "The trait CUSTOM_USED is in use by a resource provider."),
        ("CUSTOM_NOPE", errors.NotFound, "No such trait(s): CUSTOM_NOPE."),
        ("HW_NOPE", errors.NotFound, "No such trait(s): HW_NOPE."),
    ],
)
def test_delete_rejections_change_nothing(
    db: Database, name: str, error: type[errors.PlacementError], message: str
) -> None:
    _custom(db, "CUSTOM_USED")
    rp = _provider(db)
    with db.write() as conn:
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), ["CUSTOM_USED"], 0)
    assert refusal(db, _trait_count, error, tr.delete_trait, name) == message


def test_delete_unused_custom_trait(db: Database) -> None:
    _custom(db, "CUSTOM_GONE")
    with db.write() as conn:
        tr.delete_trait(conn, "CUSTOM_GONE")
    with db.read() as conn:
        assert tr.find_trait(conn, "CUSTOM_GONE") is None


def test_replace_sets_traits_and_bumps_generation_only_on_change(db: Database) -> None:
    _custom(db, "CUSTOM_A", "CUSTOM_B")
    rp = _provider(db)
    steps: list[tuple[list[str], int, int, list[str]]] = [
        # (names, generation sent, generation after, traits after)
        (["CUSTOM_A", "CUSTOM_B", "CUSTOM_A"], 0, 1, ["CUSTOM_A", "CUSTOM_B"]),
        (["CUSTOM_B", "CUSTOM_A"], 1, 1, ["CUSTOM_A", "CUSTOM_B"]),  # same set: no bump
        (["CUSTOM_B", "HW_CPU_X86_SSE"], 1, 2, ["CUSTOM_B", "HW_CPU_X86_SSE"]),
        ([], 2, 3, []),
    ]
    for names, sent, after, traits in steps:
        with db.write() as conn:
            provider = providers.get_provider(conn, rp)
            returned, generation = tr.set_provider_traits(conn, provider, names, sent)
        assert generation == after
        assert sorted(x.name for x in returned) == sorted(traits)
        gen, stored = _state(db, rp)
        assert (gen, sorted(stored)) == (after, sorted(traits))


@pytest.mark.parametrize(
    ("names", "sent", "error", "message"),
    [
        (["CUSTOM_A"], 5, errors.ConcurrentUpdate, tr.GENERATION_CHANGED),
        (["CUSTOM_A", "NOPE_2", "NOPE_1"], 1, errors.InvalidInput, "No such trait NOPE_1, NOPE_2"),
    ],
)
def test_replace_rejections_change_nothing(
    db: Database, names: list[str], sent: int, error: type[errors.PlacementError], message: str
) -> None:
    _custom(db, "CUSTOM_A", "CUSTOM_B")
    rp = _provider(db)
    with db.write() as conn:
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), ["CUSTOM_B"], 0)
    with pytest.raises(error) as caught, db.write() as conn:
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), names, sent)
    assert caught.value.message == message
    assert _state(db, rp) == (1, ["CUSTOM_B"])


def test_replace_loses_the_compare_and_swap_to_a_concurrent_writer(db: Database) -> None:
    """A stale snapshot that passed the generation check still loses at the bump."""
    _custom(db, "CUSTOM_A", "CUSTOM_B")
    rp = _provider(db)
    with db.read() as conn:
        stale = providers.get_provider(conn, rp)
    with db.write() as conn:
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), ["CUSTOM_B"], 0)
    before = _associations(db)
    with pytest.raises(errors.ConcurrentUpdate), db.write() as conn:
        tr.set_provider_traits(conn, stale, ["CUSTOM_A"], 0)
    assert _associations(db) == before
    assert _state(db, rp) == (1, ["CUSTOM_B"])


def test_clear_bumps_only_when_there_was_something(db: Database) -> None:
    _custom(db, "CUSTOM_A")
    rp = _provider(db)
    with db.write() as conn:
        assert tr.clear_provider_traits(conn, providers.get_provider(conn, rp)) == 0
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), ["CUSTOM_A"], 0)
    with db.write() as conn:
        assert tr.clear_provider_traits(conn, providers.get_provider(conn, rp)) == 2
    assert _state(db, rp) == (2, [])


def test_clear_with_stale_provider_is_a_concurrent_update(db: Database) -> None:
    _custom(db, "CUSTOM_A")
    rp = _provider(db)
    with db.write() as conn:
        tr.set_provider_traits(conn, providers.get_provider(conn, rp), ["CUSTOM_A"], 0)
    with db.read() as conn:
        stale = providers.get_provider(conn, rp)
    with db.write() as conn:
        conn.execute(
            t.resource_providers.update()
            .where(t.resource_providers.c.id == stale.id)
            .values(generation=7)
        )
    with pytest.raises(errors.ConcurrentUpdate) as caught, db.write() as conn:
        tr.clear_provider_traits(conn, stale)
    assert caught.value.message == tr.CONCURRENT_PROVIDER_UPDATE
    assert _state(db, rp) == (7, ["CUSTOM_A"])
