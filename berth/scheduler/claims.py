"""Claims: write the chosen allocations with the batch write engine, plus the group rule.

Every claim is a request of :mod:`berth.placement.write.batch` (new
consumers, all or nothing: capacity judged in the transaction, provider
generations swapped).  :func:`claim_combined` hands it to the group commit,
sharing the transaction with other threads' claims (requests without a
server group).  :func:`claim_batch` writes it in a transaction of its own
(:func:`berth.placement.write.retry.atomically`) to which it adds
:func:`berth.scheduler.groups.enforce` (server-group generation swap,
members' hosts re-checked, members recorded).  Both judge again, in the
transaction, every other rule the selection relied on
(:mod:`berth.scheduler.recheck`: traits, aggregates, zone, tenants, the
disabled flag, hints), which each :class:`Claim` carries.  A lost race
rolls the transaction back and runs it again (``scheduler_claim_retries``
times); a host that turns out full, breaks a rule, or would break the group
rule is final for that host: the caller moves on to the next alternate.
:func:`release` undoes claims (all-or-nothing).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from berth.db.engine import Database
from berth.placement import consumers, errors
from berth.placement.catalog import CUSTOM_ID_START
from berth.placement.class_ids import ResourceClassCache
from berth.placement.write import batch
from berth.placement.write.batch import NewConsumer, OwnerIds, Verdict
from berth.placement.write.retry import atomically
from berth.scheduler import groups, recheck
from berth.scheduler.explain import CLAIMS, OTHER, REASON_CODES, REJECTIONS
from berth.scheduler.group_commit import GroupCommit
from berth.scheduler.groups import GroupViolation
from berth.scheduler.recheck import NO_RULES, Rules

# How retries of claims and releases are counted (``berth_write_retries``).
OPERATION = "claims"
INSTANCE_EXISTS = "berth.scheduler.instance_exists"


class InstanceExists(errors.Conflict):
    """An instance of the request already holds allocations (schedule it only once)."""

    default_code = INSTANCE_EXISTS

    def __init__(self, instances: list[str]) -> None:
        super().__init__(
            "An instance of the request already holds allocations: " + ", ".join(instances)
        )


@dataclass(frozen=True)
class Claim:
    """One instance on one host: the consumer, the host, the allocation, the rules relied on."""

    instance_uuid: str
    host_uuid: str
    allocation: dict[str, dict[str, int]]  # provider uuid -> class -> amount
    rules: Rules = NO_RULES  # judged again in the claim transaction


@dataclass(frozen=True)
class Owner:
    """Who the claimed consumers belong to, and their server group."""

    project_id: str | None
    user_id: str | None
    group_uuid: str | None = None


class KnownClasses(ResourceClassCache):
    """A :class:`ResourceClassCache` filled from memory instead of a query.

    Only for requests naming standard classes, whose names and ids never
    change; a request with custom classes reads them in its transaction.
    """

    def __init__(self, names: Mapping[int, str]) -> None:
        self.by_id = {rc: name for rc, name in names.items() if rc < CUSTOM_ID_START}
        self.by_name = {name: rc for rc, name in self.by_id.items()}


def _classes(conn: Connection, known: KnownClasses, claims: list[Claim]) -> ResourceClassCache:
    names = {rc for c in claims for amounts in c.allocation.values() for rc in amounts}
    if names <= known.by_name.keys():
        return known
    return ResourceClassCache(conn)


@dataclass
class Outcome:
    """How a claim went (``claimed``, ``full``, ``rule``, ``group`` or ``conflict``), tries made."""

    kind: str = "claimed"
    message: str = ""
    transactions: int = 0
    reason: str = ""  # ``rule``: the broken rule's code (berth.scheduler.recheck)

    @property
    def ok(self) -> bool:
        """True when the claim is written."""
        return self.kind == "claimed"

    @property
    def lost_races(self) -> int:
        """Transactions rolled back because another writer got there first."""
        extra = self.transactions - 1
        return extra + 1 if self.kind == "conflict" else extra


class _Refused(Exception):
    """The batch write refused the claim's request (full, exists): roll back, say why."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


def _request(claims: list[Claim], owner: Owner) -> list[NewConsumer]:
    """The claims as one all-or-nothing request of new consumers."""
    return [
        NewConsumer(c.instance_uuid, c.allocation, owner.project_id, owner.user_id) for c in claims
    ]


def _transaction(
    claims: list[Claim], owner: Owner, known: KnownClasses, outcome: Outcome
) -> Callable[[Connection], None]:
    request = _request(claims, owner)
    placed = [(c.instance_uuid, c.host_uuid) for c in claims]

    def once(conn: Connection) -> None:
        outcome.transactions += 1
        if outcome.transactions > 1:
            _back_off(conn, outcome.transactions)
        classes = _classes(conn, known, claims)
        rules = recheck.for_batch([claims])
        verdict = batch.write(conn, [request], classes, OwnerIds(), rules=rules)[0]
        if verdict.kind == batch.CONFLICT:
            raise errors.ConcurrentUpdate(verdict.message)  # run again
        if not verdict.ok:
            raise _Refused(verdict)
        if owner.group_uuid is not None:
            groups.enforce(conn, owner.group_uuid, placed)

    return once


# Lost races: wait up to 2, 4, 8 ... ms (capped) before running again, so
# that workers which all lost to the same winner do not collide again at once.
BACKOFF_MS = 2.0
BACKOFF_CAP_MS = 25.0


def _back_off(conn: Connection, transaction: int) -> None:
    """Sleep a random, growing while before rerunning a claim that lost a race.

    Nothing has been sent in this transaction yet (PostgreSQL and MariaDB
    begin on the first statement), so no lock is held while waiting.  SQLite
    writers are serialised by ``BEGIN IMMEDIATE`` and never lose a race, and
    must not sleep holding its write lock: no wait there.
    """
    if conn.dialect.name == "sqlite":
        return
    ceiling = min(BACKOFF_CAP_MS, BACKOFF_MS * 2 ** (transaction - 2))
    time.sleep(random.uniform(0, ceiling) / 1000)


def claim_batch(
    db: Database, claims: list[Claim], owner: Owner, known: KnownClasses, retries: int
) -> Outcome:
    """Claim all of ``claims`` in one transaction; nothing is written unless all fit.

    :class:`InstanceExists` (an instance already holds allocations) is
    raised: no other host would help.
    """
    outcome = Outcome()
    once = _transaction(claims, owner, known, outcome)
    try:
        atomically(db, once, retries, operation=OPERATION)
    except _Refused as refused:
        if refused.verdict.kind == batch.EXISTS:
            raise InstanceExists([c.instance_uuid for c in claims]) from None
        verdict = refused.verdict
        outcome.kind, outcome.message = verdict.kind, verdict.message
        outcome.reason = verdict.reason
    except GroupViolation as exc:
        outcome.kind, outcome.message = "group", exc.message
    except errors.ConcurrentUpdate as exc:
        outcome.kind, outcome.message = "conflict", exc.message
    _count(outcome, len(claims))
    return outcome


def claim_combined(
    group_commit: GroupCommit, claims: list[Claim], owner: Owner, known: KnownClasses
) -> Outcome:
    """Like :func:`claim_batch`, through the group commit (no server group).

    The claims share a transaction with the concurrent claims of other
    threads of this process (:mod:`berth.scheduler.group_commit`); still all
    or nothing.
    """
    assert owner.group_uuid is None, "server-group claims take claim_batch"
    job = group_commit.claim(_request(claims, owner), known, claims)
    assert job.verdict is not None
    verdict = job.verdict
    if verdict.kind == batch.EXISTS:
        raise InstanceExists(verdict.message.split(", "))
    kind = "claimed" if verdict.ok else verdict.kind
    outcome = Outcome(kind, verdict.message, job.transactions, verdict.reason)
    _count(outcome, len(claims))
    return outcome


def _count(outcome: Outcome, claims: int) -> None:
    CLAIMS.labels(outcome.kind).inc(claims if outcome.ok else 1)
    if outcome.kind == batch.RULE:  # a host turned away at the claim, like a filter's
        code = outcome.reason if outcome.reason in REASON_CODES else OTHER
        REJECTIONS.labels("claim", code).inc()
    if outcome.lost_races:
        CLAIMS.labels("lost_race").inc(outcome.lost_races)


def release(db: Database, instances: list[str], group_uuid: str | None, retries: int) -> None:
    """Remove the allocations (and group membership) of ``instances``: a rollback."""

    def once(conn: Connection) -> None:
        for uuid in instances:
            # NotFound: never claimed, or already gone.
            with contextlib.suppress(errors.NotFound):
                consumers.delete_allocations(conn, uuid)
        if group_uuid is not None:
            groups.forget(conn, group_uuid, instances)

    atomically(db, once, max(retries, 10), operation=OPERATION)
    # Claims counted as "claimed" earlier, now undone (all-or-nothing).
    CLAIMS.labels("released").inc(len(instances))
