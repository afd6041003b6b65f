"""Allocations for consumers that do not exist yet, many requests in one transaction.

A scheduler's claims are all of this kind: a new instance takes resources
on a provider.  :func:`write` judges a batch of such requests (each one
all-or-nothing: the instances of one scheduling request, or one instance)
with the rules of :func:`berth.placement.allocations.write`, in ONE
transaction, so that many claims share one commit::

    consumers    a request naming a consumer that exists is refused ("exists")
    capacity     inventory, usage and generation of every (provider, class)
                 pair, read in one query of this transaction; requests judged
                 in order, each counting the ones accepted before it
                 (:meth:`Capacity.refusal`)
    claim        compare-and-swap the generation of every provider an accepted
                 request touches, in one statement where the database returns
                 the rows it changed; a request on a provider whose swap is
                 lost is refused ("conflict": try it again)
    write        consumers (generation 1, as after the API's first write),
                 allocation rows and change-log rows, one statement each

Capacity is judged only against usage no other writer changed since it was
read (the swap would fail): nothing is over-committed.  Unlike the API's
write, one refused request does not roll back the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, insert, literal, select

from berth.db import tables as t
from berth.db.arrays import as_arrays, insert_from_arrays
from berth.placement import changes
from berth.placement import consumers as cons
from berth.placement.allocations import Capacity, capacity, capacity_query, unable
from berth.placement.lookups import ResourceClassCache, swap_generations, utcnow

C = t.consumers
A = t.allocations
RP = t.resource_providers

CLAIMED = "claimed"
FULL = "full"  # does not fit, or a provider is gone: final for these hosts
EXISTS = "exists"  # a consumer already exists: final for the request
CONFLICT = "conflict"  # lost a provider's compare-and-swap: try again


@dataclass(frozen=True)
class NewConsumer:
    """One consumer to create with its allocations."""

    uuid: str
    resources: dict[str, dict[str, int]]  # provider uuid -> class -> amount
    project_id: str | None = None  # None: the incomplete-consumer owner
    user_id: str | None = None


@dataclass
class Verdict:
    """What :func:`write` did with one request."""

    kind: str = CLAIMED
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the request's consumers and allocations are written."""
        return self.kind == CLAIMED


_Ensure = Callable[[Connection, str], int]


@dataclass
class OwnerIds:
    """Project and user ids by external id, kept across transactions.

    Projects and users are never deleted, so an id read once stays valid;
    ids first seen in a transaction are kept only once it commits
    (:meth:`committed`).
    """

    projects: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    fresh: list[tuple[dict[str, int], str, int]] = field(default_factory=list)

    def project(self, conn: Connection, external_id: str | None) -> int:
        """The internal id of project ``external_id`` (created if new)."""
        name = cons.INCOMPLETE_PROJECT_ID if external_id is None else external_id
        return self._lookup(conn, self.projects, name, cons.ensure_project)

    def user(self, conn: Connection, external_id: str | None) -> int:
        """The internal id of user ``external_id`` (created if new)."""
        name = cons.INCOMPLETE_USER_ID if external_id is None else external_id
        return self._lookup(conn, self.users, name, cons.ensure_user)

    def _lookup(self, conn: Connection, known: dict[str, int], name: str, ensure: _Ensure) -> int:
        found = known.get(name)
        if found is None:
            found = ensure(conn, name)
            self.fresh.append((known, name, found))
        return found

    def committed(self, ok: bool) -> None:
        """Keep (the transaction committed) or drop the ids read in it."""
        if ok:
            for known, name, value in self.fresh:
                known[name] = value
        self.fresh.clear()


def write(
    conn: Connection,
    requests: Sequence[Sequence[NewConsumer]],
    classes: ResourceClassCache,
    owners: OwnerIds,
    check_existing: bool = True,
) -> list[Verdict]:
    """Create the consumers and allocations of every request that fits; a verdict each.

    With ``check_existing`` False, a consumer that exists is found by the
    unique key instead (``IntegrityError``: roll back, run again checking).
    """
    verdicts = [Verdict() for _ in requests]
    if check_existing:
        _refuse_existing(conn, requests, verdicts)
    names = {rc for r in requests for c in r for amounts in c.resources.values() for rc in amounts}
    class_ids = {rc: classes.by_name.get(rc) for rc in names}
    providers, caps = _read(conn, requests, class_ids)
    running: dict[tuple[int, int], int] = defaultdict(int)
    for request, verdict in zip(requests, verdicts, strict=True):
        if verdict.ok:
            _judge(request, verdict, providers, class_ids, caps, running)
    lost = _claim(conn, requests, verdicts, providers)
    accepted = [r for r, v in zip(requests, verdicts, strict=True) if v.ok]
    _insert(conn, accepted, providers, class_ids, owners)
    changes.record(conn, _provider_ids(requests, verdicts, providers) | lost)
    return verdicts


def _refuse_existing(
    conn: Connection, requests: Sequence[Sequence[NewConsumer]], verdicts: list[Verdict]
) -> None:
    uuids = [c.uuid for r in requests for c in r]
    existing = set(conn.scalars(select(C.c.uuid).where(C.c.uuid.in_(uuids))))
    for request, verdict in zip(requests, verdicts, strict=True):
        mine = [c.uuid for c in request]
        taken = [u for u in mine if u in existing]
        if taken or len(set(mine)) != len(mine):
            verdict.kind, verdict.message = EXISTS, ", ".join(taken or mine)
        existing.update(mine)  # a later request of the batch naming them again: exists


def _read(
    conn: Connection,
    requests: Sequence[Sequence[NewConsumer]],
    class_ids: dict[str, int | None],
) -> tuple[dict[str, tuple[int, int]], dict[tuple[int, int], Capacity]]:
    """Providers (uuid -> id, generation) and their capacities, in one query.

    A provider without inventory of the classes asked for is absent: the
    requests naming it are refused as the API refuses them.
    """
    uuids = {p for r in requests for c in r for p in c.resources}
    wanted = {rc for rc in class_ids.values() if rc is not None}
    if not uuids or not wanted:
        return {}, {}
    providers: dict[str, tuple[int, int]] = {}
    caps: dict[tuple[int, int], Capacity] = {}
    params = {"uuids": sorted(uuids), "classes": sorted(wanted)}
    for row in conn.execute(_CAPACITIES, params):
        providers[row.uuid] = (row.resource_provider_id, row.generation)
        caps[(row.resource_provider_id, row.resource_class_id)] = capacity(row)
    return providers, caps


def _judge(
    request: Sequence[NewConsumer],
    verdict: Verdict,
    providers: dict[str, tuple[int, int]],
    class_ids: dict[str, int | None],
    caps: dict[tuple[int, int], Capacity],
    running: dict[tuple[int, int], int],
) -> None:
    """Accept ``request`` (adding it to ``running``) or refuse it, saying why."""
    added: dict[tuple[int, int], int] = defaultdict(int)
    for consumer in request:
        for uuid, amounts in consumer.resources.items():
            if uuid not in providers:
                verdict.kind = FULL
                verdict.message = f"Allocation for resource provider '{uuid}' that does not exist."
                return
            pid = providers[uuid][0]
            for rc, amount in amounts.items():
                if amount == 0:
                    continue
                rc_id = class_ids[rc]
                cap = caps.get((pid, rc_id)) if rc_id is not None else None
                if cap is None or rc_id is None:
                    verdict.kind = FULL
                    verdict.message = f"Inventory for '{rc}' on resource provider '{uuid}' invalid."
                    return
                key = (pid, rc_id)
                added[key] += amount
                why = cap.refusal(amount, running[key] + added[key])
                if why is not None:
                    verdict.kind, verdict.message = FULL, unable(rc, uuid, why).message
                    return
    for key, amount in added.items():
        running[key] += amount


def _claim(
    conn: Connection,
    requests: Sequence[Sequence[NewConsumer]],
    verdicts: list[Verdict],
    providers: dict[str, tuple[int, int]],
) -> set[int]:
    """Swap the generations the accepted requests need; refuse those whose swap lost.

    Returns the providers swapped for requests refused afterwards: their
    generation moved although nothing was written (the change feed hears of
    them all the same).
    """
    generations = {pid: gen for pid, gen in providers.values()}
    needed = sorted(_provider_ids(requests, verdicts, providers))
    swapped = swap_generations(conn, {pid: generations[pid] for pid in needed})
    lost = set(needed) - swapped
    if not lost:
        return set()
    for request, verdict in zip(requests, verdicts, strict=True):
        if verdict.ok and any(providers[p][0] in lost for c in request for p in c.resources):
            verdict.kind = CONFLICT
            verdict.message = "resource provider generation conflict"
    return swapped - _provider_ids(requests, verdicts, providers)


def _provider_ids(
    requests: Sequence[Sequence[NewConsumer]],
    verdicts: list[Verdict],
    providers: dict[str, tuple[int, int]],
) -> set[int]:
    """The ids of the providers the accepted requests allocate from."""
    return {
        providers[p][0]
        for r, v in zip(requests, verdicts, strict=True)
        if v.ok
        for c in r
        for p in c.resources
    }


def _insert(
    conn: Connection,
    accepted: list[Sequence[NewConsumer]],
    providers: dict[str, tuple[int, int]],
    class_ids: dict[str, int | None],
    owners: OwnerIds,
) -> None:
    if not accepted:
        return
    consumers: list[tuple[str, int, int]] = []
    allocations: list[tuple[int, str, int | None, int]] = []
    for request in accepted:
        for c in request:
            project = owners.project(conn, c.project_id)
            # No project (before 1.8): the incomplete owner, user included.
            user = owners.user(conn, c.user_id if c.project_id else None)
            consumers.append((c.uuid, project, user))
            allocations += [
                (providers[uuid][0], c.uuid, class_ids[rc], amount)
                for uuid, amounts in c.resources.items()
                for rc, amount in amounts.items()
                if amount > 0
            ]
    now = utcnow()
    if conn.dialect.name == "postgresql":
        # One statement of fixed text per table, the rows as arrays.
        conn.execute(_CONSUMERS_FROM_ARRAYS, as_arrays(_CONSUMER, consumers, now=now))
        if allocations:
            conn.execute(_ALLOCATIONS_FROM_ARRAYS, as_arrays(_ALLOCATION, allocations, now=now))
        return
    fixed = {"generation": 1, "created_at": now, "updated_at": now}
    conn.execute(insert(C), [{**_named(_CONSUMER, row), **fixed} for row in consumers])
    if allocations:
        rows = [{**_named(_ALLOCATION, row), "created_at": now} for row in allocations]
        conn.execute(insert(A), rows)


def _named(names: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, row, strict=True))


# Built once: a statement object reused is not analysed again on every call.
_CAPACITIES = capacity_query(
    select(RP.c.id).where(RP.c.uuid.in_(bindparam("uuids", expanding=True))),
    bindparam("classes", expanding=True),
)
_CONSUMER = ("uuid", "project_id", "user_id")
_ALLOCATION = ("resource_provider_id", "consumer_id", "resource_class_id", "used")
_NOW = bindparam("now", type_=DateTime())
_CONSUMERS_FROM_ARRAYS = insert_from_arrays(
    C, _CONSUMER, {"generation": literal(1), "created_at": _NOW, "updated_at": _NOW}
)
_ALLOCATIONS_FROM_ARRAYS = insert_from_arrays(A, _ALLOCATION, {"created_at": _NOW})
