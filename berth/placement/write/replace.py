"""Replace the allocations of one or more consumers: the API's write.

In ONE ``db.write()`` transaction (:func:`write`)::

    prepare   consumers: one statement each reads the row, the owner's and
              type's ids and whether it holds anything; generation check
              (client's, 1.28+); one statement reads the providers named by
              the request with their generation, inventory and usage
    apply     read and delete what the consumers held (only if they hold
              anything: then inventory and usage are read again), judge every
              amount (a Ledger), create missing owners, types and new
              consumers (at their final generation), insert the rows
    swap      compare-and-swap every touched provider's generation, in id
              order (:func:`berth.placement.write.generations.bump_all`)
    finish    compare-and-swap every existing consumer's generation (by id),
              delete consumers left without allocations

A new consumer's claim on one provider is five statements: look-up,
provider read, consumer insert, allocation insert, swap (with its change-feed
row on PostgreSQL).

No row is locked before the swaps: if another writer changed a provider or
consumer in between, a swap finds a different generation and the whole
transaction is rolled back and run again
(:func:`berth.placement.write.retry.atomically`).  Capacity is therefore
judged only against usage no writer has changed since: nothing is
over-committed.  A generation the *client* sent that does not match is a
``StaleGeneration``: answered at once.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from sqlalchemy import Connection, bindparam, delete, select

from berth import metrics
from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import ALLOC, RC, RP
from berth.placement import changes, errors
from berth.placement import consumers as cons
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
    found: cons.Lookup
    project: str  # the owner's external ids, as the request names them
    user: str
    row: ConsumerRow | None = None  # None until a new consumer is created (apply)
    owner_ids: tuple[int, int, int | None] = (0, 0, None)  # project, user, type (apply)
    visited: bool = False  # its allocations change: its generation is bumped

    @property
    def created(self) -> bool:
        """True when this write creates the consumer."""
        return self.found.row is None


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
    # Inventory and usage of the requested (provider, class) pairs as prepare read
    # them, and the classes' ids; None when they no longer hold (the reshaper's
    # interim inventories): apply reads them again.
    capacities: dict[Pair, capacity.Capacity] | None = None
    class_ids: dict[str, int] = field(default_factory=dict)
    touched: dict[int, int] = field(default_factory=dict)
    judged: _Judged | None = None  # what apply judged, to judge it again


@dataclass(frozen=True)
class _Judged:
    """The entries apply judged, their class ids, and what the consumers held before."""

    entries: list[_Entry]
    class_ids: dict[str, int]
    held: dict[Pair, int]


def _owner(request: ConsumerAllocations) -> tuple[str, str]:
    """The project and user a request gives its consumer (1.8 and before: incomplete)."""
    if request.project_id is None:
        return cons.INCOMPLETE_PROJECT_ID, cons.INCOMPLETE_USER_ID
    return request.project_id, request.user_id or cons.INCOMPLETE_USER_ID


def prepare(
    conn: Connection, requests: list[ConsumerAllocations], check_generation: bool
) -> WritePlan:
    """Look up consumers and check their generations; read the requested providers.

    One statement per consumer and one for every provider with its inventory
    and usage of the requested classes.
    """
    consumers = []
    for r in requests:
        project, user = _owner(r)
        found = cons.look_up(conn, r.uuid, project, user, r.consumer_type)
        if check_generation:
            cons.check_generation(r.uuid, found.row, r.generation)
        consumers.append(_Consumer(r, found, project, user, found.row))
    wanted = [p for r in requests for p in r.resources]
    names = {rc for r in requests for amounts in r.resources.values() for rc in amounts}
    read = capacity.read_request(conn, set(wanted), names)
    for uuid in wanted:
        if uuid not in read.providers:
            raise errors.InvalidInput(capacity.missing_provider(uuid))
    return WritePlan(consumers, read.providers, read.capacities, read.class_ids)


def apply(conn: Connection, plan: WritePlan) -> dict[int, int]:
    """Replace the consumers' allocations after checking they fit.

    Returns the providers whose generation must be swapped, id -> generation
    read.  Raises NotFound (unknown class) or InvalidAllocation.
    """
    holding = [c.request.uuid for c in plan.consumers if c.found.holds]
    old = conn.execute(_HELD, {"uuids": holding}).all() if holding else []
    entries = _entries(conn, plan, old)
    class_ids = _class_ids(conn, plan, entries, old)
    if holding:
        conn.execute(delete(ALLOC).where(ALLOC.c.consumer_id.in_(holding)))
    held: dict[Pair, int] = defaultdict(int)
    for row in old:
        held[(row.resource_provider_id, row.resource_class_id)] += row.used
    # What prepare read still holds unless allocations were just deleted.
    caps = plan.capacities if plan.capacities is not None and not old else None
    _judge(conn, plan, entries, class_ids, held, caps)
    plan.judged = _Judged(entries, class_ids, held)
    for e in entries:
        e.consumer.visited = True
        plan.touched[e.provider_id] = plan.providers[e.provider_uuid][1]
    _create_consumers(conn, plan)
    new = [
        (e.provider_id, e.consumer.request.uuid, class_ids[e.resource_class], e.amount)
        for e in entries
        if e.amount > 0
    ]
    rows.insert_allocations(conn, new, utcnow())
    # Providers that only lose usage keep their generation (as the reference)
    # but the change feed must still hear of them.
    changes.record(conn, {r.resource_provider_id for r in old} - set(plan.touched))
    return plan.touched


def _create_consumers(conn: Connection, plan: WritePlan) -> None:
    """Create the owners, types and consumers not there yet (new ones at their final generation)."""
    for c in plan.consumers:
        found, request = c.found, c.request
        project_id = found.project_id
        if project_id is None:
            project_id = cons.ensure_project(conn, c.project)
        user_id = found.user_id
        if user_id is None:
            user_id = cons.ensure_user(conn, c.user)
        type_id = found.row.consumer_type_id if found.row else None
        if request.consumer_type is not None:
            type_id = found.type_id
            if type_id is None:
                type_id = cons.ensure_consumer_type(conn, request.consumer_type)
        c.owner_ids = (project_id, user_id, type_id)
        if c.created:
            generation = 1 if c.visited else 0
            c.row = cons.create_consumer(
                conn, request.uuid, project_id, user_id, type_id, generation
            )


def _entries(conn: Connection, plan: WritePlan, old: Sequence[Any]) -> list[_Entry]:
    """The request as entries; a consumer sent empty clears what it holds."""
    held: dict[str, list[Any]] = defaultdict(list)
    for row in old:
        held[row.consumer_id].append(row)
    cleared = [c for c in plan.consumers if not c.request.resources]
    cleared_ids = {r.resource_provider_id for c in cleared for r in held[c.request.uuid]}
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
        for r in held[c.request.uuid]:
            if r.name is None:  # its class was deleted after we read the rows
                raise errors.ConcurrentUpdate("resource classes changed")
            pid = r.resource_provider_id
            entries.append(_Entry(c, pid, by_id[pid], r.name, 0))
    return entries


def _class_ids(
    conn: Connection, plan: WritePlan, entries: list[_Entry], old: Sequence[Any]
) -> dict[str, int]:
    """Name -> id of every class of ``entries``; NotFound for the first unknown one."""
    known = dict(plan.class_ids)
    known.update((r.name, r.resource_class_id) for r in old if r.name is not None)
    unknown = {e.resource_class for e in entries} - known.keys()
    if unknown:
        query = select(RC.c.name, RC.c.id).where(RC.c.name.in_(sorted(unknown)))
        known.update((r.name, r.id) for r in conn.execute(query))
    for e in entries:
        if e.resource_class not in known:
            raise errors.NotFound(f"No such resource class {e.resource_class}.")
    return {e.resource_class: known[e.resource_class] for e in entries}


def _judge(
    conn: Connection,
    plan: WritePlan,
    entries: list[_Entry],
    class_ids: dict[str, int],
    held: dict[Pair, int],
    known: dict[Pair, capacity.Capacity] | None,
) -> None:
    """InvalidAllocation unless every entry fits, judged as the reference does.

    A change that leaves a provider over capacity is allowed only when it
    lowers that provider's usage (``held``: what the consumers held before).
    ``known``: the capacities prepare read, if they still hold (else read now).
    """
    caps = known
    if caps is None:
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


def judge_again(conn: Connection, plan: WritePlan, pending: set[int]) -> dict[int, int]:
    """After a lost swap: judge the write again on what the providers hold now; the
    generations of ``pending`` as read.  This write's own new rows are not counted."""
    assert plan.judged is not None  # apply judged it once
    entries, class_ids, held = plan.judged.entries, plan.judged.class_ids, plan.judged.held
    metrics.WRITE_RETRIES.labels("allocations").inc()
    ours: dict[Pair, int] = defaultdict(int)
    for e in entries:
        ours[(e.provider_id, class_ids[e.resource_class])] += e.amount
    provider_ids = {e.provider_id for e in entries}
    read, current = capacity.read_current(conn, provider_ids, set(class_ids.values()))
    if not pending <= current.keys():  # a provider lost its inventory meanwhile
        raise errors.ConcurrentUpdate(generations.GENERATION_CONFLICT)
    caps = {pair: replace(cap, used=cap.used - ours[pair]) for pair, cap in read.items()}
    plan.providers = {
        uuid: (pid, current.get(pid, gen)) for uuid, (pid, gen) in plan.providers.items()
    }
    _judge(conn, plan, entries, class_ids, held, caps)
    return {pid: current[pid] for pid in pending}


def _refuse(conn: Connection, plan: WritePlan, error: InvalidAllocation) -> NoReturn:
    """Raise ``error`` unless what it was judged on has changed meanwhile (retry)."""
    expected = {pid: gen for pid, gen in plan.providers.values()}
    current = conn.execute(select(RP.c.id, RP.c.generation).where(RP.c.id.in_(expected)))
    if any(expected[r.id] != r.generation for r in current):
        raise errors.ConcurrentUpdate(generations.GENERATION_CONFLICT)
    raise error


def finish(conn: Connection, plan: WritePlan) -> None:
    """Swap consumer generations (by id) and drop consumers left empty."""
    for c in sorted(plan.consumers, key=lambda c: c.row.id if c.row else 0):
        assert c.row is not None  # apply created the new ones
        generation = c.row.generation
        if not c.created:
            project_id, user_id, type_id = c.owner_ids
            generation = cons.save_consumer(
                conn, c.row, bump=c.visited, project_id=project_id, user_id=user_id, type_id=type_id
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
        touched = apply(conn, plan)
        again = functools.partial(judge_again, conn, plan)
        generations.bump_all_judged(conn, touched, again, attempts)
        finish(conn, plan)

    atomically(db, once, attempts, operation="allocations")


# The allocations of the consumers that hold any, with their class names.
_HELD = (
    select(
        ALLOC.c.consumer_id,
        ALLOC.c.resource_provider_id,
        ALLOC.c.resource_class_id,
        ALLOC.c.used,
        RC.c.name,
    )
    .select_from(ALLOC.outerjoin(RC, RC.c.id == ALLOC.c.resource_class_id))
    .where(ALLOC.c.consumer_id.in_(bindparam("uuids", expanding=True)))
)
