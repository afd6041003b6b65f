"""Aggregates of resource providers.

An aggregate is only a uuid: ``placement_aggregates`` rows are created the
first time a uuid is associated with a provider and never validated against
anything else.  Replacing a provider's aggregates bumps its generation only
when asked (microversion 1.19 and later); older clients never did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Integer,
    String,
    bindparam,
    cast,
    delete,
    insert,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError

from berth.db.clock import utcnow
from berth.db.tables import AGG, RP, RP_AGG
from berth.placement import changes, errors
from berth.placement.providers import missing_provider
from berth.placement.write import generations

GENERATION_CHANGED = (
    "Resource provider's generation already changed. Please update the generation and try again."
)


class AggregateRace(errors.Conflict):
    """A concurrent writer created the same aggregate or association; retry."""

    default_code = errors.CONCURRENT_UPDATE


def provider_aggregates(conn: Connection, provider_id: int) -> list[str]:
    """The uuids of the provider's aggregates, oldest aggregate first."""
    return list(
        conn.execute(
            select(AGG.c.uuid)
            .select_from(RP_AGG.join(AGG, RP_AGG.c.aggregate_id == AGG.c.id))
            .where(RP_AGG.c.resource_provider_id == provider_id)
            .order_by(AGG.c.id)
        ).scalars()
    )


def _read(
    conn: Connection, provider_uuid: str, uuids: Sequence[str]
) -> tuple[tuple[int, int], dict[str, int], set[int]]:
    """The provider's (id, generation) (NotFound if missing), the ids of the aggregates
    among ``uuids`` that exist, and of the provider's: one statement."""
    provider: tuple[int, int] | None = None
    known: dict[str, int] = {}
    held: set[int] = set()
    params = {"provider": provider_uuid, "uuids": list(uuids) or [""]}
    for uuid, agg_id, generation in conn.execute(_READ, params):
        if generation is not None:
            provider = (agg_id, generation)
        elif uuid is None:
            held.add(agg_id)
        elif uuid in uuids:  # exactly: MySQL's default collation ignores case
            known[uuid] = agg_id
    if provider is None:
        raise errors.NotFound(missing_provider(provider_uuid))
    return provider, known, held


def _ensure_aggregates(conn: Connection, uuids: Sequence[str], known: dict[str, int]) -> None:
    """Create the aggregates of ``uuids`` not ``known`` yet (adding them to it)."""
    now = utcnow()
    for uuid in uuids:
        if uuid in known:
            continue
        try:
            result = conn.execute(insert(AGG).values(uuid=uuid, created_at=now))
        except IntegrityError:
            raise AggregateRace(f"Aggregate {uuid} was created concurrently.") from None
        known[uuid] = result.inserted_primary_key[0]  # type: ignore[index]


def _associate(
    conn: Connection, provider_id: int, wanted: Sequence[int], current: set[int]
) -> None:
    """Make ``wanted`` (aggregate ids) the provider's associations (it has ``current``)."""
    stale = current - set(wanted)
    if stale:
        conn.execute(
            delete(RP_AGG).where(
                RP_AGG.c.resource_provider_id == provider_id,
                RP_AGG.c.aggregate_id.in_(stale),
            )
        )
    now = utcnow()
    rows = [
        {"resource_provider_id": provider_id, "aggregate_id": agg_id, "created_at": now}
        for agg_id in wanted
        if agg_id not in current
    ]
    if rows:
        try:
            conn.execute(_ADD, rows)
        except IntegrityError:
            raise AggregateRace("Aggregates were associated concurrently.") from None


def set_aggregates(
    conn: Connection,
    provider_uuid: str,
    aggregate_uuids: Sequence[str],
    expected_generation: int | None,
    bump: bool,
) -> int:
    """Make ``aggregate_uuids`` the provider's aggregates; the provider's generation after.

    ``expected_generation`` (when given) must be the provider's current
    generation; ``bump`` swaps the provider's generation.
    """
    uuids = list(dict.fromkeys(aggregate_uuids))
    (provider_id, generation), known, held = _read(conn, provider_uuid, uuids)
    if expected_generation is not None and generation != expected_generation:
        raise errors.StaleGeneration(GENERATION_CHANGED)
    _ensure_aggregates(conn, uuids, known)
    _associate(conn, provider_id, [known[uuid] for uuid in uuids], held)
    if bump:
        return generations.bump(conn, provider_id, generation)
    # No generation change, but the change feed must still hear of it.
    changes.record(conn, [provider_id])
    return generation


def _read_statement() -> CompoundSelect[Any]:
    """Three index lookups as one UNION ALL of (uuid, id, generation): the provider by
    uuid (NULL, id, generation); the named aggregates (uuid, id, NULL); the provider's
    aggregates (NULL, id, NULL)."""
    no_int, no_text = cast(null(), Integer), cast(null(), String)
    by_uuid = RP.c.uuid == bindparam("provider")
    provider = select(no_text, RP.c.id, RP.c.generation).where(by_uuid)
    named = select(AGG.c.uuid, AGG.c.id, no_int).where(
        AGG.c.uuid.in_(bindparam("uuids", expanding=True))
    )
    held = (
        select(no_text, RP_AGG.c.aggregate_id, no_int)
        .select_from(RP_AGG.join(RP, RP.c.id == RP_AGG.c.resource_provider_id))
        .where(by_uuid)
    )
    return union_all(provider, named, held)


# Built once: a statement object reused is not analysed again on every call.
_READ = _read_statement()
_ADD = insert(RP_AGG)
