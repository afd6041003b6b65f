"""Aggregates of resource providers.

An aggregate is only a uuid: ``placement_aggregates`` rows are created the
first time a uuid is associated with a provider and never validated against
anything else.  Replacing a provider's aggregates bumps its generation only
when asked (microversion 1.19 and later); older clients never did.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select
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


def _ensure_aggregates(conn: Connection, uuids: Sequence[str]) -> dict[str, int]:
    """Aggregate uuid -> id, creating the aggregates not seen before."""
    if not uuids:
        return {}
    found = {
        row.uuid: row.id
        for row in conn.execute(select(AGG.c.uuid, AGG.c.id).where(AGG.c.uuid.in_(uuids)))
    }
    now = utcnow()
    for uuid in uuids:
        if uuid in found:
            continue
        try:
            result = conn.execute(insert(AGG).values(uuid=uuid, created_at=now))
        except IntegrityError:
            raise AggregateRace(f"Aggregate {uuid} was created concurrently.") from None
        found[uuid] = result.inserted_primary_key[0]  # type: ignore[index]
    return found


def _associate(conn: Connection, provider_id: int, wanted: Sequence[int]) -> None:
    """Make ``wanted`` (aggregate ids) the provider's associations."""
    current = set(
        conn.execute(
            select(RP_AGG.c.aggregate_id).where(RP_AGG.c.resource_provider_id == provider_id)
        ).scalars()
    )
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
            conn.execute(insert(RP_AGG), rows)
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
    wanted = _ensure_aggregates(conn, list(dict.fromkeys(aggregate_uuids)))
    _associate(conn, provider.id, list(wanted.values()))
    if bump:
        return generations.bump(conn, provider.id, provider.generation)
    # No generation change, but the change feed must still hear of it.
    changes.record(conn, [provider.id])
    return provider.generation
