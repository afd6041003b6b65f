"""Traits and the traits of resource providers.

Standard traits come from os-traits (written by ``catalog.sync``); only
``CUSTOM_`` traits may be created or deleted.  Replacing a provider's traits
is a provider write: it swaps the provider's generation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Exists,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    exists,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter

from berth.db.clock import utcnow
from berth.db.tables import RP, RP_TRAIT, TRAIT
from berth.placement import errors, named
from berth.placement.providers import ProviderRow, missing_provider
from berth.placement.write import generations

CUSTOM_PREFIX = "CUSTOM_"

GENERATION_CHANGED = (
    "Resource provider's generation already changed. Please update the generation and try again."
)
CONCURRENT_PROVIDER_UPDATE = (
    "Another thread concurrently updated the resource provider data. Please retry your update"
)


@dataclass(frozen=True)
class Trait(named.Named):
    """One trait as stored."""

    @property
    def custom(self) -> bool:
        """True for user-defined (``CUSTOM_``) traits."""
        return self.name.startswith(CUSTOM_PREFIX)


@dataclass(frozen=True)
class TraitFilter:
    """The filters of ``GET /traits``; None means "do not filter on this"."""

    names: Collection[str] | None = None
    prefix: str | None = None
    associated: bool | None = None


def _traits(conn: Connection, query: Select[Any]) -> list[Trait]:
    return [Trait(**row._mapping) for row in conn.execute(query.order_by(TRAIT.c.id)).all()]


def _associated() -> Exists:
    return exists().where(RP_TRAIT.c.trait_id == TRAIT.c.id)


def list_traits(conn: Connection, filters: TraitFilter | None = None) -> list[Trait]:
    """The traits matching ``filters`` (all of them by default), by id."""
    query = named.columns(TRAIT)
    filters = filters or TraitFilter()
    if filters.names is not None:
        names = list(filters.names)
        if not names:
            return []
        query = query.where(TRAIT.c.name.in_(names))
    if filters.prefix is not None:
        query = query.where(TRAIT.c.name.startswith(filters.prefix, autoescape=True))
    if filters.associated is True:
        query = query.where(_associated())
    elif filters.associated is False:
        query = query.where(~_associated())
    # Names compare exactly: MySQL's default collation (and SQLite's LIKE) ignore case.
    exact = None if filters.names is None else set(filters.names)
    return [
        trait
        for trait in _traits(conn, query)
        if (exact is None or trait.name in exact)
        and (filters.prefix is None or trait.name.startswith(filters.prefix))
    ]


def find_trait(conn: Connection, name: str) -> Trait | None:
    """The trait called ``name``, or None."""
    return named.find(conn, TRAIT, name, Trait)


def get_trait(conn: Connection, name: str) -> Trait:
    """The trait called ``name``; NotFound when there is none."""
    return named.get(conn, TRAIT, name, Trait, f"No such trait(s): {name}.")


def trait_ids(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """Ids of the named traits; NotFound listing every unknown one."""
    wanted = set(names)
    if not wanted:
        return {}
    rows = conn.execute(select(TRAIT.c.name, TRAIT.c.id).where(TRAIT.c.name.in_(wanted)))
    found = {row.name: row.id for row in rows if row.name in wanted}
    missing = wanted - found.keys()
    if missing:
        raise errors.NotFound(f"No such trait(s): {', '.join(sorted(missing))}.")
    return found


def ensure_trait(conn: Connection, name: str) -> tuple[Trait, bool]:
    """The custom trait ``name``, created if missing; True when it was created."""
    if not name.startswith(CUSTOM_PREFIX):
        raise errors.InvalidInput(f"Trait name must start with {CUSTOM_PREFIX}: {name}")
    existing = find_trait(conn, name)
    if existing is not None:
        return existing, False
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(TRAIT.insert().values(name=name, created_at=now))
    except IntegrityError:
        # Another writer created it between our look and our insert.
        return get_trait(conn, name), False
    return get_trait(conn, name), True


def delete_trait(conn: Connection, name: str) -> None:
    """Delete custom trait ``name`` unless a provider has it."""
    trait = get_trait(conn, name)
    if not trait.custom:
        raise errors.InvalidInput(f"Cannot delete standard trait {name}.")
    # The in-use test is part of the DELETE so that a provider cannot gain
    # the trait between a separate check and the delete.
    deleted = conn.execute(TRAIT.delete().where(TRAIT.c.id == trait.id, ~_associated())).rowcount
    if deleted == 1:
        return
    if find_trait(conn, name) is None:
        raise errors.NotFound(f"No such trait(s): {name}.")
    raise errors.Conflict(f"The trait {name} is in use by a resource provider.")


def provider_traits(conn: Connection, provider_id: int) -> list[Trait]:
    """The traits of one provider, by trait id."""
    query = named.columns(TRAIT).join(RP_TRAIT, RP_TRAIT.c.trait_id == TRAIT.c.id)
    return _traits(conn, query.where(RP_TRAIT.c.resource_provider_id == provider_id))


def _wanted_and_held(
    conn: Connection, provider_id: int, names: Collection[str]
) -> tuple[list[Trait], set[int]]:
    """The traits called ``names`` exactly (by id), and the ids of the provider's: one read."""
    params = {"provider": provider_id, "names": list(names) or [""]}
    wanted: list[Trait] = []
    held: set[int] = set()
    for trait_id, name, created, updated, has in conn.execute(_WANTED_AND_HELD, params):
        if name in names:  # exactly: MySQL's default collation ignores case
            wanted.append(Trait(trait_id, name, created, updated))
        if has:
            held.add(trait_id)
    return wanted, held


def _apply(conn: Connection, provider_id: int, to_delete: set[int], to_add: set[int]) -> None:
    if to_delete:
        conn.execute(
            RP_TRAIT.delete().where(
                RP_TRAIT.c.resource_provider_id == provider_id,
                RP_TRAIT.c.trait_id.in_(to_delete),
            )
        )
    if to_add:
        now = utcnow()
        rows = [
            {"resource_provider_id": provider_id, "trait_id": tid, "created_at": now}
            for tid in sorted(to_add)
        ]
        conn.execute(_ADD, rows)


def _replace(
    conn: Connection, provider: _Provider, want: list[Trait], have: set[int], message: str
) -> int:
    """Make the provider's trait set ``want`` (it has ``have``); the generation after.

    The generation is swapped before the association rows are touched, so a
    concurrent writer waits on (then loses) the compare-and-swap instead of
    colliding on the association rows.  Nothing changes: no new generation.
    """
    want_ids = {trait.id for trait in want}
    to_delete, to_add = have - want_ids, want_ids - have
    if not to_delete and not to_add:
        return provider.generation
    try:
        generation = generations.bump(conn, provider.id, provider.generation)
    except errors.ConcurrentUpdate:
        raise errors.ConcurrentUpdate(message) from None
    _apply(conn, provider.id, to_delete, to_add)
    return generation


def set_provider_traits(
    conn: Connection, provider: ProviderRow, names: Iterable[str], generation: int
) -> tuple[list[Trait], int]:
    """Replace the provider's traits with ``names``; returns them and the new generation.

    ``generation`` is the one the caller saw: StaleGeneration when the
    provider has moved on since.  The generation only changes when the set does.
    """
    wanted = list(dict.fromkeys(names))
    if provider.generation != generation:
        raise errors.StaleGeneration(GENERATION_CHANGED)
    traits, held = _wanted_and_held(conn, provider.id, wanted)
    return _set(conn, _Provider(provider.id, provider.generation), wanted, traits, held)


def replace_provider_traits(
    conn: Connection, provider_uuid: str, names: Iterable[str], generation: int
) -> tuple[list[Trait], int]:
    """:func:`set_provider_traits` for the provider ``provider_uuid`` (NotFound if missing),
    read with the traits in one statement."""
    wanted = list(dict.fromkeys(names))
    provider, traits, held = _read_for_replace(conn, provider_uuid, wanted)
    if provider.generation != generation:
        raise errors.StaleGeneration(GENERATION_CHANGED)
    return _set(conn, provider, wanted, traits, held)


@dataclass(frozen=True)
class _Provider:
    """What replacing a provider's traits needs of it."""

    id: int
    generation: int


def _set(
    conn: Connection, provider: _Provider, wanted: list[str], traits: list[Trait], held: set[int]
) -> tuple[list[Trait], int]:
    missing = set(wanted) - {trait.name for trait in traits}
    if missing:
        raise errors.InvalidInput(f"No such trait {', '.join(sorted(missing))}")
    return traits, _replace(conn, provider, traits, held, GENERATION_CHANGED)


def clear_provider_traits(conn: Connection, provider: ProviderRow) -> int:
    """Remove every trait from the provider; returns its generation afterwards."""
    _, held = _wanted_and_held(conn, provider.id, [])
    own = _Provider(provider.id, provider.generation)
    return _replace(conn, own, [], held, CONCURRENT_PROVIDER_UPDATE)


def _read_for_replace(
    conn: Connection, uuid: str, names: Collection[str]
) -> tuple[_Provider, list[Trait], set[int]]:
    """The provider (NotFound if missing), the traits called ``names`` exactly (by id),
    and the ids of the provider's traits: one statement."""
    provider: _Provider | None = None
    wanted: list[Trait] = []
    held: set[int] = set()
    params = {"uuid": uuid, "names": list(names) or [""]}
    for provider_id, generation, trait_id, name, created, updated in conn.execute(
        _FOR_REPLACE, params
    ):
        if provider_id is not None:
            provider = _Provider(provider_id, generation)
        elif name is None:
            held.add(trait_id)
        elif name in names:  # exactly: MySQL's default collation ignores case
            wanted.append(Trait(trait_id, name, created, updated))
    if provider is None:
        raise errors.NotFound(missing_provider(uuid))
    return provider, sorted(wanted, key=lambda trait: trait.id), held


def _for_replace_statement() -> Any:
    """Three index lookups as one UNION ALL: the provider by uuid (id, generation); the
    traits by name (id, name, times); the provider's traits (id only)."""
    uuid: BindParameter[str] = bindparam("uuid")
    no_int, no_text, no_time = cast(null(), Integer), cast(null(), String), cast(null(), DateTime)
    provider = select(RP.c.id, RP.c.generation, no_int, no_text, no_time, no_time).where(
        RP.c.uuid == uuid
    )
    named_traits = select(
        no_int, no_int, TRAIT.c.id, TRAIT.c.name, TRAIT.c.created_at, TRAIT.c.updated_at
    ).where(TRAIT.c.name.in_(bindparam("names", expanding=True)))
    held = (
        select(no_int, no_int, RP_TRAIT.c.trait_id, no_text, no_time, no_time)
        .select_from(RP_TRAIT.join(RP, RP.c.id == RP_TRAIT.c.resource_provider_id))
        .where(RP.c.uuid == uuid)
    )
    return union_all(provider, named_traits, held)


def _wanted_and_held_statement() -> Select[Any]:
    provider: BindParameter[int] = bindparam("provider")
    held_by = select(RP_TRAIT.c.trait_id).where(RP_TRAIT.c.resource_provider_id == provider)
    has = exists().where(
        RP_TRAIT.c.trait_id == TRAIT.c.id, RP_TRAIT.c.resource_provider_id == provider
    )
    return (
        named.columns(TRAIT)
        .add_columns(has.label("held"))
        .where(TRAIT.c.name.in_(bindparam("names", expanding=True)) | TRAIT.c.id.in_(held_by))
        .order_by(TRAIT.c.id)
    )


# Built once: a statement object reused is not analysed again on every call.
_WANTED_AND_HELD = _wanted_and_held_statement()
_FOR_REPLACE = _for_replace_statement()
_ADD = RP_TRAIT.insert()
