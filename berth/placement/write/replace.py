"""Replace the allocations of one or more consumers: the API's write.

In ONE ``db.write()`` transaction (:func:`write`)::

    prepare   consumers: generation check (client's, 1.28+), owner, type;
              providers named by the request, with the generation read now
    apply     read inventory and usage of the (provider, class) pairs,
              replace the consumers' rows, judging every amount (a Ledger)
    swap      compare-and-swap every touched provider's generation, in id
              order (:func:`berth.placement.write.generations.bump_all`)
    finish    compare-and-swap every consumer's generation (by id), delete
              consumers left without allocations

No row is locked before the swaps: if another writer changed a provider or
consumer in between, a swap finds a different generation and the whole
transaction is rolled back and run again
(:func:`berth.placement.write.retry.atomically`).  Capacity is therefore
judged only against usage no writer has changed since: nothing is
over-committed.  A generation the *client* sent that does not match is a
``StaleGeneration``: answered at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy import Connection, delete, select

from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import ALLOC, RP
from berth.placement import changes, errors
from berth.placement import consumers as cons
from berth.placement.class_ids import ResourceClassCache
from berth.placement.consumers import ConsumerRow
from berth.placement.write import capacity, generations, rows
from berth.placement.write.capacity import InvalidAllocation, Ledger, Pair
from berth.placement.write.retry import atomically


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
class WritePlan:
    """The state :func:`prepare` established, for :func:`apply` and :func:`finish`."""

    consumers: list[_Consumer]
    # provider uuid -> (id, generation as read); grows with cleared providers
    providers: dict[str, tuple[int, int]]
    touched: dict[int, int] = field(default_factory=dict)


def prepare(
    conn: Connection, requests: list[ConsumerAllocations], check_generation: bool
) -> WritePlan:
    """Check consumer generations, ensure consumers, resolve providers."""
    ensured = [_ensure_consumer(conn, r, check_generation) for r in requests]
    wanted = [p for r in requests for p in r.resources]
    providers: dict[str, tuple[int, int]] = {}
    if wanted:
        query = select(RP.c.uuid, RP.c.id, RP.c.generation).where(RP.c.uuid.in_(set(wanted)))
        providers = {r.uuid: (r.id, r.generation) for r in conn.execute(query)}
    for uuid in wanted:
        if uuid not in providers:
            raise errors.InvalidInput(capacity.missing_provider(uuid))
    return WritePlan(ensured, providers)


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


def apply(conn: Connection, plan: WritePlan, classes: ResourceClassCache) -> dict[int, int]:
    """Replace the consumers' allocations after checking they fit.

    Returns the providers whose generation must be swapped, id -> generation
    read.  Raises NotFound (unknown class) or InvalidAllocation.
    """
    uuids = [c.row.uuid for c in plan.consumers]
    old = conn.execute(
        select(
            ALLOC.c.consumer_id,
            ALLOC.c.resource_provider_id,
            ALLOC.c.resource_class_id,
            ALLOC.c.used,
        ).where(ALLOC.c.consumer_id.in_(uuids))
    ).all()
    entries = _entries(conn, plan, old, classes)
    class_ids = {e.resource_class: classes.id_of(e.resource_class) for e in entries}
    if uuids:
        conn.execute(delete(ALLOC).where(ALLOC.c.consumer_id.in_(uuids)))
    held: dict[Pair, int] = defaultdict(int)
    for row in old:
        held[(row.resource_provider_id, row.resource_class_id)] += row.used
    _judge(conn, plan, entries, class_ids, held)
    new = [
        (e.provider_id, e.consumer.row.uuid, class_ids[e.resource_class], e.amount)
        for e in entries
        if e.amount > 0
    ]
    rows.insert_allocations(conn, new, utcnow())
    for e in entries:
        e.consumer.visited = True
        plan.touched[e.provider_id] = plan.providers[e.provider_uuid][1]
    # Providers that only lose usage keep their generation (as the reference)
    # but the change feed must still hear of them.
    changes.record(conn, {r.resource_provider_id for r in old} - set(plan.touched))
    return plan.touched


def _entries(
    conn: Connection, plan: WritePlan, old: Sequence[Any], classes: ResourceClassCache
) -> list[_Entry]:
    """The request as entries; a consumer sent empty clears what it holds."""
    held: dict[str, list[Any]] = defaultdict(list)
    for row in old:
        held[row.consumer_id].append(row)
    cleared = [c for c in plan.consumers if not c.request.resources]
    cleared_ids = {r.resource_provider_id for c in cleared for r in held[c.row.uuid]}
    missing = cleared_ids - {pid for pid, _ in plan.providers.values()}
    if missing:
        query = select(RP.c.uuid, RP.c.id, RP.c.generation).where(RP.c.id.in_(missing))
        for r in conn.execute(query):
            plan.providers[r.uuid] = (r.id, r.generation)
    by_id = {pid: uuid for uuid, (pid, _) in plan.providers.items()}
    entries: list[_Entry] = []
    for c in plan.consumers:
        if c.request.resources:
            for uuid, amounts in c.request.resources.items():
                pid = plan.providers[uuid][0]
                entries += [_Entry(c, pid, uuid, rc, n) for rc, n in amounts.items()]
            continue
        for r in held[c.row.uuid]:
            if r.resource_class_id not in classes.by_id:  # created after our snapshot
                raise errors.ConcurrentUpdate("resource classes changed")
            pid = r.resource_provider_id
            entries.append(_Entry(c, pid, by_id[pid], classes.name_of(r.resource_class_id), 0))
    return entries


def _judge(
    conn: Connection,
    plan: WritePlan,
    entries: list[_Entry],
    class_ids: dict[str, int],
    held: dict[Pair, int],
) -> None:
    """InvalidAllocation unless every entry fits, judged as the reference does.

    A change that leaves a provider over capacity is allowed only when it
    lowers that provider's usage (``held``: what the consumers held before).
    """
    caps = capacity.read(conn, {e.provider_id for e in entries}, set(class_ids.values()))
    with_inventory = {pid for pid, _ in caps}
    missing = [e.provider_uuid for e in entries if e.provider_id not in with_inventory]
    if missing:
        names = ", ".join(dict.fromkeys(e.resource_class for e in entries))
        _refuse(conn, plan, capacity.inventory_invalid(names, ", ".join(dict.fromkeys(missing))))
    ledger = Ledger(caps, held)
    for e in entries:
        provider = (e.provider_id, e.provider_uuid)
        refusal = ledger.add(provider, class_ids[e.resource_class], e.resource_class, e.amount)
        if refusal is not None:
            _refuse(conn, plan, refusal)


def _refuse(conn: Connection, plan: WritePlan, error: InvalidAllocation) -> NoReturn:
    """Raise ``error`` unless what it was judged on has changed meanwhile (retry)."""
    expected = {pid: gen for pid, gen in plan.providers.values()}
    current = conn.execute(select(RP.c.id, RP.c.generation).where(RP.c.id.in_(expected)))
    if any(expected[r.id] != r.generation for r in current):
        raise errors.ConcurrentUpdate(generations.GENERATION_CONFLICT)
    raise error


def finish(conn: Connection, plan: WritePlan) -> None:
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
        generations.bump_all(conn, touched)
        finish(conn, plan)

    atomically(db, once, attempts, operation="allocations")
