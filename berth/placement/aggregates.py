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
    bindparam,
    delete,
    insert,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError

from berth.db.clock import utcnow
from berth.db.tables import AGG, RP_AGG
from berth.placement import changes, errors
from berth.placement.providers import get_provider
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


def _known_and_held(
    conn: Connection, provider_id: int, uuids: Sequence[str]
) -> tuple[dict[str, int], set[int]]:
    """Ids of the aggregates among ``uuids`` that exist, and of the provider's: one read."""
    known: dict[str, int] = {}
    held: set[int] = set()
    params = {"provider": provider_id, "uuids": list(uuids) or [""]}
    for uuid, agg_id in conn.execute(_KNOWN_AND_HELD, params):
        if uuid is None:
            held.add(agg_id)
        elif uuid in uuids:  # exactly: MySQL's default collation ignores case
            known[uuid] = agg_id
    return known, held


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
    provider = get_provider(conn, provider_uuid)
    if expected_generation is not None and provider.generation != expected_generation:
        raise errors.StaleGeneration(GENERATION_CHANGED)
    uuids = list(dict.fromkeys(aggregate_uuids))
    known, held = _known_and_held(conn, provider.id, uuids)
    _ensure_aggregates(conn, uuids, known)
    _associate(conn, provider.id, [known[uuid] for uuid in uuids], held)
    if bump:
        return generations.bump(conn, provider.id, provider.generation)
    # No generation change, but the change feed must still hear of it.
    changes.record(conn, [provider.id])
    return provider.generation


def _known_and_held_statement() -> CompoundSelect[Any]:
    """(uuid, id) of the named aggregates, then (NULL, id) of the provider's."""
    known = select(AGG.c.uuid, AGG.c.id).where(AGG.c.uuid.in_(bindparam("uuids", expanding=True)))
    held = select(null().label("uuid"), RP_AGG.c.aggregate_id).where(
        RP_AGG.c.resource_provider_id == bindparam("provider")
    )
    return union_all(known, held)


# Built once: a statement object reused is not analysed again on every call.
_KNOWN_AND_HELD = _known_and_held_statement()
_ADD = insert(RP_AGG)
