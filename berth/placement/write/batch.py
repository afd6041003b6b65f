"""Allocations for consumers that do not exist yet, many requests in one transaction.

A new instance taking resources on providers is a request of this kind
(every scheduler claim is one).  :func:`write` judges a batch of such
requests, each all-or-nothing, by the rules of the API's write
(:mod:`berth.placement.write.replace`), in ONE transaction, so that many
requests share one commit::

    consumers    a request naming a consumer that exists is refused (EXISTS)
    capacity     inventory, usage and generation of every (provider, class)
                 pair, read in one query
    rules        the caller's own rules, if any (the scheduler's recheck):
                 a request breaking one is refused (RULE); each names the
                 providers whose state its rules read, and their generations
    judge        the requests judged in order on one Ledger, each counting
                 the ones accepted before it
    swap         compare-and-swap the generation of every provider an
                 accepted request touches or its rules read, in one
                 statement where the database returns the rows it changed;
                 a request on a provider whose swap is lost is refused
                 (CONFLICT: try again)
    insert       consumers (generation 1, as after the API's first write)
                 and allocation rows, one statement each

Capacity is judged only against usage no other writer changed since it was
read (the swap would fail): nothing is over-committed.  The same holds for
the caller's rules, read after the generations they are swapped at.  Unlike
the API's write, one refused request does not roll back the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from berth.db.clock import utcnow
from berth.db.tables import CONSUMER
from berth.placement import consumers as cons
from berth.placement.class_ids import ResourceClassCache
from berth.placement.write import capacity, generations, rows
from berth.placement.write.capacity import Ledger

# Verdict kinds.  The scheduler reports "full" and "conflict" as they are
# (berth.scheduler.claims.Outcome); "written" becomes its "claimed".
WRITTEN = "written"
FULL = "full"  # does not fit, or a provider is gone: final for these providers
EXISTS = "exists"  # a consumer already exists: final for the request
CONFLICT = "conflict"  # lost a provider's compare-and-swap: try again
RULE = "rule"  # breaks a rule of the caller's (a disabled host, a trait gone): final

Request = Sequence["NewConsumer"]  # one all-or-nothing request


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

    kind: str = WRITTEN
    message: str = ""
    reason: str = ""  # RULE: the rule's constant code

    @property
    def ok(self) -> bool:
        """True when the request's consumers and allocations are written."""
        return self.kind == WRITTEN


@dataclass(frozen=True)
class RuleVerdict:
    """What the caller's rules say of one request: a refusal, and what they read."""

    reason: str | None = None  # a constant code: the request breaks a rule
    message: str = ""
    relied_on: Mapping[int, int] = field(default_factory=dict)  # provider id -> generation


# The caller's rules beyond capacity, judged in the transaction after the
# capacity read: a RuleVerdict per request.  The providers a verdict relied on
# are swapped with the request's own (at the capacity read's generation when it
# read them, else at the one the rules read with their state), so a change to
# them committed after it was read makes the request lose the race.
RuleCheck = Callable[[Connection], Sequence[RuleVerdict]]


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
    requests: Sequence[Request],
    classes: ResourceClassCache,
    owners: OwnerIds,
    check_existing: bool = True,
    rules: RuleCheck | None = None,
) -> list[Verdict]:
    """Create the consumers and allocations of every request that fits; a verdict each.

    With ``check_existing`` False, a consumer that exists is found by the
    unique key instead (``IntegrityError``: roll back, run again checking).
    ``rules``: the caller's rules, judged after the capacity read.
    """
    verdicts = [Verdict() for _ in requests]
    if check_existing:
        _refuse_existing(conn, requests, verdicts)
    names = {rc for r in requests for c in r for amounts in c.resources.values() for rc in amounts}
    class_ids = {rc: classes.by_name.get(rc) for rc in names}
    uuids = {p for r in requests for c in r for p in c.resources}
    wanted = {rc for rc in class_ids.values() if rc is not None}
    providers, caps = capacity.read_by_uuid(conn, uuids, wanted)
    relied = _judge_rules(conn, rules, verdicts)
    ledger = Ledger(caps)
    for request, verdict in zip(requests, verdicts, strict=True):
        if verdict.ok:
            refusal = _refusal(request, providers, class_ids, ledger)
            ledger.settle(accept=refusal is None)
            if refusal is not None:
                verdict.kind, verdict.message = FULL, refusal
    _swap(conn, requests, verdicts, providers, relied)
    accepted = [r for r, v in zip(requests, verdicts, strict=True) if v.ok]
    _insert(conn, accepted, providers, class_ids, owners)
    return verdicts


def _refuse_existing(
    conn: Connection, requests: Sequence[Request], verdicts: list[Verdict]
) -> None:
    uuids = [c.uuid for r in requests for c in r]
    existing = set(conn.scalars(select(CONSUMER.c.uuid).where(CONSUMER.c.uuid.in_(uuids))))
    for request, verdict in zip(requests, verdicts, strict=True):
        mine = [c.uuid for c in request]
        taken = [u for u in mine if u in existing]
        if taken or len(set(mine)) != len(mine):
            verdict.kind, verdict.message = EXISTS, ", ".join(taken or mine)
        existing.update(mine)  # a later request of the batch naming them again: exists


def _judge_rules(
    conn: Connection, rules: RuleCheck | None, verdicts: list[Verdict]
) -> list[Mapping[int, int]]:
    """Refuse the requests breaking the caller's rules; the providers each one's rules read."""
    if rules is None:
        return [{} for _ in verdicts]
    said = rules(conn)
    for verdict, rule in zip(verdicts, said, strict=True):
        if verdict.ok and rule.reason is not None:
            verdict.kind, verdict.message, verdict.reason = RULE, rule.message, rule.reason
    return [rule.relied_on for rule in said]


def _refusal(
    request: Request,
    providers: dict[str, tuple[int, int]],
    class_ids: dict[str, int | None],
    ledger: Ledger,
) -> str | None:
    """Why ``request`` does not fit on top of those accepted before (None: it does).

    A provider without inventory of the classes asked for is absent from
    ``providers``: the request is refused as naming a provider that does
    not exist.
    """
    for consumer in request:
        for uuid, amounts in consumer.resources.items():
            if uuid not in providers:
                return capacity.missing_provider(uuid)
            provider = (providers[uuid][0], uuid)
            for rc, amount in amounts.items():
                refused = ledger.add(provider, class_ids[rc], rc, amount)
                if refused is not None:
                    return refused.message
    return None


def _swap(
    conn: Connection,
    requests: Sequence[Request],
    verdicts: list[Verdict],
    providers: dict[str, tuple[int, int]],
    relied: list[Mapping[int, int]],
) -> None:
    """Swap the generations the accepted requests need; refuse those whose swap lost.

    Providers swapped for requests refused afterwards keep their new
    generation although nothing was written on them (the change feed
    hears of them all the same).  So do the providers only a request's
    rules read (a host's root provider allocating nothing).
    """
    expected = dict(providers.values())
    for rule, verdict in zip(relied, verdicts, strict=True):
        if verdict.ok:
            for pid, generation in rule.items():
                expected.setdefault(pid, generation)  # the capacity read's, if it has one
    needed = _provider_ids(requests, verdicts, providers, relied)
    lost = needed - generations.swap(conn, {pid: expected[pid] for pid in needed})
    if not lost:
        return
    for request, verdict, rule in zip(requests, verdicts, relied, strict=True):
        mine = {providers[p][0] for c in request for p in c.resources} | rule.keys()
        if verdict.ok and not lost.isdisjoint(mine):
            verdict.kind, verdict.message = CONFLICT, generations.GENERATION_CONFLICT


def _provider_ids(
    requests: Sequence[Request],
    verdicts: list[Verdict],
    providers: dict[str, tuple[int, int]],
    relied: list[Mapping[int, int]],
) -> set[int]:
    """The ids of the providers the accepted requests allocate from or their rules read."""
    needed = {
        providers[p][0]
        for r, v in zip(requests, verdicts, strict=True)
        if v.ok
        for c in r
        for p in c.resources
    }
    for rule, verdict in zip(relied, verdicts, strict=True):
        if verdict.ok:
            needed.update(rule)
    return needed


def _insert(
    conn: Connection,
    accepted: list[Request],
    providers: dict[str, tuple[int, int]],
    class_ids: dict[str, int | None],
    owners: OwnerIds,
) -> None:
    """Consumers and allocation rows of the accepted requests."""
    known = {rc: rc_id for rc, rc_id in class_ids.items() if rc_id is not None}
    consumers: list[rows.NewConsumerRow] = []
    allocations: list[rows.Allocation] = []
    for request in accepted:
        for c in request:
            project = owners.project(conn, c.project_id)
            # No project (before 1.8): the incomplete owner, user included.
            user = owners.user(conn, c.user_id if c.project_id else None)
            consumers.append((c.uuid, project, user))
            allocations += [
                (providers[uuid][0], c.uuid, known[rc], amount)
                for uuid, amounts in c.resources.items()
                for rc, amount in amounts.items()
                if amount > 0
            ]
    now = utcnow()
    rows.insert_new_consumers(conn, consumers, now)
    rows.insert_allocations(conn, allocations, now)
