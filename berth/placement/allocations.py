"""The atomic allocation write, and the allocation reads.

A write replaces the allocations of one or more consumers in ONE
``db.write()`` transaction (see :func:`write`)::

    prepare   consumers: generation check (client's, 1.28+), owner, type;
              providers named by the request, with the generation read now
    apply     read inventory and usage of the (provider, class) pairs,
              replace the consumers' rows, check capacity and constraints
    claim     compare-and-swap every touched provider's generation (by id)
    finish    compare-and-swap every consumer's generation (by id), delete
              consumers left without allocations

No row is locked before the compare-and-swaps: if another writer changed a
provider or consumer in between, a swap finds a different generation and the
whole transaction is rolled back and run again (:func:`run_atomically`), up
to ``allocation_conflict_retry_count`` times.  Capacity is therefore judged
only against usage no writer has changed since: nothing is over-committed.
A generation the *client* sent that does not match is a
:class:`~berth.placement.consumers.GenerationMismatch`: answered at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import structlog
from sqlalchemy import Connection, Select, delete, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from berth import metrics
from berth.db import tables as t
from berth.db.engine import Database, is_transient
from berth.placement import changes, errors
from berth.placement import consumers as cons
from berth.placement.consumers import ConsumerRow, GenerationMismatch
from berth.placement.lookups import ResourceClassCache, bump_generation, utcnow

log = structlog.get_logger("berth.allocations")

A = t.allocations
RP = t.resource_providers
INV = t.inventories
T = TypeVar("T")

RETRIES_EXHAUSTED = (
    "Another thread concurrently updated the resource provider data. Please retry your update"
)


class InvalidAllocation(errors.Conflict):
    """The allocations do not fit the inventory (capacity, constraints, none)."""


@dataclass(frozen=True)
class ConsumerAllocations:
    """What a request asks for one consumer."""

    uuid: str
    # provider uuid -> resource class -> amount, in request order; empty
    # means "remove all of this consumer's allocations".
    resources: dict[str, dict[str, int]]
    project_id: str | None = None  # None (before 1.8): the incomplete-consumer owner
    user_id: str | None = None
    generation: int | None = None  # checked only when the write checks generations
    consumer_type: str | None = None  # None: leave the consumer's type alone


@dataclass
class _Consumer:
    request: ConsumerAllocations
    row: ConsumerRow
    project_id: int
    user_id: int
    type_id: int | None
    visited: bool = False  # its allocations change: its generation is bumped


@dataclass(frozen=True)
class _Entry:
    """One (consumer, provider, class, amount); amount 0 clears."""

    consumer: _Consumer
    provider_id: int
    provider_uuid: str
    resource_class: str
    amount: int


@dataclass
class Plan:
    """The state :func:`prepare` established, for :func:`apply` and :func:`finish`."""

    consumers: list[_Consumer]
    # provider uuid -> (id, generation as read); grows with cleared providers
    providers: dict[str, tuple[int, int]]
    touched: dict[int, int] = field(default_factory=dict)


def prepare(conn: Connection, requests: list[ConsumerAllocations], check_generation: bool) -> Plan:
    """Check consumer generations, ensure consumers, resolve providers."""
    ensured = [_ensure_consumer(conn, r, check_generation) for r in requests]
    wanted = [p for r in requests for p in r.resources]
    providers: dict[str, tuple[int, int]] = {}
    if wanted:
        query = select(RP.c.uuid, RP.c.id, RP.c.generation).where(RP.c.uuid.in_(set(wanted)))
        providers = {r.uuid: (r.id, r.generation) for r in conn.execute(query)}
    for uuid in wanted:
        if uuid not in providers:
            raise errors.InvalidInput(
                f"Allocation for resource provider '{uuid}' that does not exist."
            )
    return Plan(ensured, providers)


def _ensure_consumer(
    conn: Connection, request: ConsumerAllocations, check_generation: bool
) -> _Consumer:
    existing = cons.find_consumer(conn, request.uuid)
    if check_generation:
        cons.check_generation(request.uuid, existing, request.generation)
    if request.project_id is None:
        project_id = cons.ensure_project(conn, cons.INCOMPLETE_PROJECT_ID)
        user_id = cons.ensure_user(conn, cons.INCOMPLETE_USER_ID)
    else:
        project_id = cons.ensure_project(conn, request.project_id)
        user_id = cons.ensure_user(conn, request.user_id or cons.INCOMPLETE_USER_ID)
    type_id = existing.consumer_type_id if existing else None
    if request.consumer_type is not None:
        type_id = cons.ensure_consumer_type(conn, request.consumer_type)
    if existing is None:
        existing = cons.create_consumer(conn, request.uuid, project_id, user_id, type_id)
    return _Consumer(request, existing, project_id, user_id, type_id)


def apply(conn: Connection, plan: Plan, classes: ResourceClassCache) -> dict[int, int]:
    """Replace the consumers' allocations after checking they fit.

    Returns the providers whose generation must be bumped, id -> generation
    read.  Raises NotFound (unknown class) or InvalidAllocation.
    """
    uuids = [c.row.uuid for c in plan.consumers]
    old = conn.execute(
        select(A.c.consumer_id, A.c.resource_provider_id, A.c.resource_class_id, A.c.used).where(
            A.c.consumer_id.in_(uuids)
        )
    ).all()
    entries = _entries(conn, plan, old, classes)
    class_ids = {e.resource_class: classes.id_of(e.resource_class) for e in entries}
    if uuids:
        conn.execute(delete(A).where(A.c.consumer_id.in_(uuids)))
    mine: dict[tuple[int, int], int] = defaultdict(int)
    for row in old:
        mine[(row.resource_provider_id, row.resource_class_id)] += row.used
    _check(conn, plan, entries, class_ids, mine, classes)
    _insert(conn, entries, class_ids)
    for e in entries:
        e.consumer.visited = True
        plan.touched[e.provider_id] = plan.providers[e.provider_uuid][1]
    # Providers that only lose usage keep their generation (as the reference)
    # but the change feed must still hear of them.
    changes.record(conn, {r.resource_provider_id for r in old} - set(plan.touched))
    return plan.touched


def _insert(conn: Connection, entries: list[_Entry], class_ids: dict[str, int]) -> None:
    now = utcnow()
    rows = [
        {
            "resource_provider_id": e.provider_id,
            "consumer_id": e.consumer.row.uuid,
            "resource_class_id": class_ids[e.resource_class],
            "used": e.amount,
            "created_at": now,
        }
        for e in entries
        if e.amount > 0
    ]
    if rows:
        conn.execute(insert(A), rows)


def _entries(
    conn: Connection, plan: Plan, old: Sequence[Any], classes: ResourceClassCache
) -> list[_Entry]:
    """The request as entries; a consumer sent empty clears what it holds."""
    held: dict[str, list[Any]] = defaultdict(list)
    for row in old:
        held[row.consumer_id].append(row)
    cleared = [c for c in plan.consumers if not c.request.resources]
    cleared_ids = {r.resource_provider_id for c in cleared for r in held[c.row.uuid]}
    known = {pid for pid, _ in plan.providers.values()}
    missing = cleared_ids - known
    if missing:
        for r in conn.execute(
            select(RP.c.uuid, RP.c.id, RP.c.generation).where(RP.c.id.in_(missing))
        ):
            plan.providers[r.uuid] = (r.id, r.generation)
    by_id = {pid: uuid for uuid, (pid, _) in plan.providers.items()}
    entries: list[_Entry] = []
    for c in plan.consumers:
        if c.request.resources:
            for uuid, amounts in c.request.resources.items():
                pid = plan.providers[uuid][0]
                entries += [_Entry(c, pid, uuid, rc, n) for rc, n in amounts.items()]
        else:
            for r in held[c.row.uuid]:
                if r.resource_class_id not in classes.by_id:  # created after our snapshot
                    raise errors.ConcurrentUpdate("resource classes changed")
                name = classes.name_of(r.resource_class_id)
                pid = r.resource_provider_id
                entries.append(_Entry(c, pid, by_id[pid], name, 0))
    return entries


@dataclass(frozen=True)
class Capacity:
    """One inventory and the usage on it, as read in the writing transaction."""

    total: int
    reserved: int
    min_unit: int
    max_unit: int
    step_size: int
    allocation_ratio: float
    used: int

    def refusal(self, amount: int, added: int, held: int = 0) -> str | None:
        """Why ``amount`` does not fit (None: it does), the rule of every write.

        ``added`` is what the write puts on this inventory in all (``amount``
        included), ``held`` what the writing consumers held on it before;
        over capacity is tolerated only if the write does not add to it.
        """
        if not (self.min_unit <= amount <= self.max_unit) or amount % self.step_size:
            return "violate inventory constraints"
        capacity = (self.total - self.reserved) * self.allocation_ratio
        if self.used + added > capacity and added > held:
            return "exceed the capacity"
        return None


def capacity_query(providers: Any, classes: Any) -> Select[Any]:
    """Inventory and current usage per (provider, class), with the provider's uuid and
    generation: one query.  ``providers`` / ``classes``: what ``IN`` takes (ids, a
    SELECT of ids, or an expanding bind parameter, for a statement built once)."""
    usage = (
        select(
            A.c.resource_provider_id,
            A.c.resource_class_id,
            func.sum(A.c.used).label("used"),
        )
        .where(A.c.resource_provider_id.in_(providers), A.c.resource_class_id.in_(classes))
        .group_by(A.c.resource_provider_id, A.c.resource_class_id)
        .subquery()
    )
    return (
        select(
            INV.c.resource_provider_id,
            INV.c.resource_class_id,
            RP.c.uuid,
            RP.c.generation,
            *CAPACITY_COLUMNS,
            usage.c.used,
        )
        .select_from(
            INV.join(RP, RP.c.id == INV.c.resource_provider_id).outerjoin(
                usage,
                (INV.c.resource_provider_id == usage.c.resource_provider_id)
                & (INV.c.resource_class_id == usage.c.resource_class_id),
            )
        )
        .where(INV.c.resource_provider_id.in_(providers), INV.c.resource_class_id.in_(classes))
    )


def capacity_rows(
    conn: Connection, provider_ids: Collection[int], class_ids: Collection[int]
) -> Sequence[Any]:
    """The rows of :func:`capacity_query` for these providers and classes."""
    return conn.execute(capacity_query(provider_ids, class_ids)).all()


CAPACITY_COLUMNS = (
    INV.c.total,
    INV.c.reserved,
    INV.c.min_unit,
    INV.c.max_unit,
    INV.c.step_size,
    INV.c.allocation_ratio,
)


def capacity(row: Any) -> Capacity:
    """The :class:`Capacity` of one :func:`capacity_rows` row."""
    return Capacity(
        row.total,
        row.reserved,
        row.min_unit,
        row.max_unit,
        row.step_size,
        row.allocation_ratio,
        int(row.used or 0),
    )


def capacities(
    conn: Connection, provider_ids: set[int], class_ids: set[int]
) -> dict[tuple[int, int], Capacity]:
    """Inventory and current usage per (provider, class), read in one query."""
    rows = capacity_rows(conn, provider_ids, class_ids)
    return {(r.resource_provider_id, r.resource_class_id): capacity(r) for r in rows}


def _check(
    conn: Connection,
    plan: Plan,
    entries: list[_Entry],
    class_ids: dict[str, int],
    mine: dict[tuple[int, int], int],
    classes: ResourceClassCache,
) -> None:
    """InvalidAllocation unless every entry fits, judged as the reference does.

    ``used`` is the usage of everyone else; a change that leaves a provider
    over capacity is allowed only when it lowers that provider's usage.
    """
    provider_ids = {e.provider_id for e in entries}
    caps = capacities(conn, provider_ids, set(class_ids.values()))
    with_inventory = {pid for pid, _ in caps}
    missing = [e.provider_uuid for e in entries if e.provider_id not in with_inventory]
    if missing:
        names = ", ".join(dict.fromkeys(e.resource_class for e in entries))
        _refuse(conn, plan, _inventory_invalid(names, ", ".join(dict.fromkeys(missing))))
    running: dict[tuple[int, int], int] = defaultdict(int)
    for e in entries:
        key = (e.provider_id, class_ids[e.resource_class])
        running[key] += e.amount
        if e.amount == 0:
            continue
        cap = caps.get(key)
        if cap is None:
            _refuse(conn, plan, _inventory_invalid(e.resource_class, e.provider_uuid))
        why = cap.refusal(e.amount, running[key], mine.get(key, 0))
        if why is not None:
            _refuse(conn, plan, unable(e.resource_class, e.provider_uuid, why))


def _inventory_invalid(resource_class: str, provider: str) -> InvalidAllocation:
    return InvalidAllocation(
        f"Inventory for '{resource_class}' on resource provider '{provider}' invalid."
    )


def unable(resource_class: str, provider_uuid: str, why: str) -> InvalidAllocation:
    """The reference's refusal of an amount (``why``: from :meth:`Capacity.refusal`)."""
    return InvalidAllocation(
        f"Unable to create allocation for '{resource_class}' on resource provider "
        f"'{provider_uuid}'. The requested amount would {why}."
    )


def _refuse(conn: Connection, plan: Plan, error: InvalidAllocation) -> NoReturn:
    """Raise ``error`` unless what it was judged on has changed meanwhile (retry)."""
    expected = {pid: gen for pid, gen in plan.providers.values()}
    rows = conn.execute(select(RP.c.id, RP.c.generation).where(RP.c.id.in_(expected)))
    if any(expected[r.id] != r.generation for r in rows):
        raise errors.ConcurrentUpdate("resource provider generation conflict")
    raise error


def claim(
    conn: Connection, generations: dict[int, int], times: dict[int, int] | None = None
) -> None:
    """Compare-and-swap provider generations, in id order (no lock cycles)."""
    for pid in sorted(generations):
        expected = generations[pid]
        for _ in range((times or {}).get(pid, 1)):
            expected = bump_generation(conn, pid, expected)


def finish(conn: Connection, plan: Plan) -> None:
    """Swap consumer generations (by id) and drop consumers left empty."""
    for c in sorted(plan.consumers, key=lambda c: c.row.id):
        generation = cons.save_consumer(
            conn,
            c.row,
            bump=c.visited,
            project_id=c.project_id,
            user_id=c.user_id,
            type_id=c.type_id,
        )
        if c.visited and not c.request.resources:
            cons.delete_if_unallocated(conn, c.row.id, generation)


def write(
    db: Database,
    requests: list[ConsumerAllocations],
    *,
    check_generation: bool,
    attempts: int,
) -> None:
    """Replace the allocations of ``requests``' consumers, atomically."""

    def once(conn: Connection) -> None:
        plan = prepare(conn, requests, check_generation)
        touched = apply(conn, plan, ResourceClassCache(conn))
        claim(conn, touched)
        finish(conn, plan)

    run_atomically(db, once, attempts)


def run_atomically(db: Database, once: Callable[[Connection], T], attempts: int) -> T:
    """Run ``once`` in a write transaction, again while it loses a race.

    Lost compare-and-swaps, unique-key races and deadlocks roll back and
    retry; after ``attempts`` tries the answer is ConcurrentUpdate.
    """
    for attempt in range(max(1, attempts)):
        try:
            with db.write() as conn:
                return once(conn)
        except GenerationMismatch:
            raise
        except (errors.ConcurrentUpdate, IntegrityError) as exc:
            log.debug("allocation write lost a race, retrying", attempt=attempt, error=str(exc))
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            log.debug("allocation write hit a transient error", attempt=attempt, error=str(exc))
        metrics.WRITE_RETRIES.labels("allocations").inc()
    log.warning("exceeded retry limit on allocations write", attempts=attempts)
    metrics.WRITE_CONFLICTS.labels("allocations").inc()
    raise errors.ConcurrentUpdate(RETRIES_EXHAUSTED)
