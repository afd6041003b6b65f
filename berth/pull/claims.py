"""Claims: a host takes queued instances, a batch of them in as few transactions as it can.

Each transaction, for every claim of the batch still undecided::

    read       the instance rows with their request (one query per 500)
    taken      not queued any more, another attempt, named twice: decided
    write      the allocation of each claim as one request of the write
               engine's batch (berth.placement.write.batch): a new consumer
               = the instance on the host provider, capacity rule, provider
               generation swap, and the rules the host must still meet
               (berth.scheduler.recheck: not disabled, required and
               forbidden traits); claims of a server group one by one in a
               savepoint, with the group rule (berth.scheduler.groups.enforce,
               as the push scheduler's claim applies it)
    state      queued -> claimed by compare-and-swap on (state, attempt)
    quota      the claimed instances' reservations consumed (deleted: their
               allocations now count instead)

Outcomes: ``claimed``; ``taken`` (not queued, another attempt, already
holds allocations); ``full`` (does not fit, or the host breaks a rule: a
disabled host, a trait missing or forbidden, a provider that does not
exist); ``group`` (the server-group rule refuses the host).  A claim whose
provider swap was lost to another writer is not decided: it is judged again
in the next transaction (which reads the new usage), up to ``retries``
transactions, then answered ``full``.  A lost race of the instance state or
of a server group's generation runs the whole transaction again
(``atomically``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.placement.class_ids import ResourceClassCache
from berth.placement.write import batch
from berth.placement.write.batch import NewConsumer, OwnerIds, Verdict
from berth.placement.write.retry import atomically
from berth.pull import instances
from berth.pull.instances import Instance
from berth.pull.metrics import CLAIMS
from berth.pull.model import CLAIMED, CLAIMED_OUTCOME, FULL, GROUP, QUEUED, TAKEN
from berth.scheduler import groups, quotas, recheck
from berth.scheduler.claims import Claim
from berth.scheduler.groups import GroupViolation
from berth.scheduler.recheck import Rules

OPERATION = "pull_claims"
LOST_RACES = "lost the race for the host's capacity {n} times: requeue and read usage again"


@dataclass(frozen=True)
class ClaimItem:
    """An agent's claim: ``host`` takes ``instance`` at ``attempt``."""

    instance: str
    host: str
    attempt: int


@dataclass(frozen=True)
class Result:
    """What became of one item of an agent's batch."""

    instance: str
    outcome: str
    reason: str = ""

    def as_body(self) -> dict[str, str]:
        """The item's JSON."""
        return {"instance": self.instance, "outcome": self.outcome, "reason": self.reason}


class Owners:
    """Project and user ids this process has read, shared by its request threads.

    Projects and users are never deleted, so an id once committed stays valid;
    each transaction starts from a copy (:meth:`for_transaction`) and what it
    learnt is kept once it committed (:meth:`keep`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[str, int] = {}
        self._users: dict[str, int] = {}

    def for_transaction(self) -> OwnerIds:
        """A transaction's own ids, starting from what this process knows."""
        with self._lock:
            return OwnerIds(dict(self._projects), dict(self._users))

    def keep(self, owners: OwnerIds) -> None:
        """Remember the ids of a transaction that committed."""
        with self._lock:
            self._projects.update(owners.projects)
            self._users.update(owners.users)


def claim(
    db: Database, items: Sequence[ClaimItem], retries: int, owners: Owners | None = None
) -> list[Result]:
    """Claim ``items`` (see the module docstring); a result per item, in order."""
    decided: dict[int, Result] = {}
    pending = list(range(len(items)))
    owners = owners or Owners()
    for _ in range(max(1, retries)):
        if not pending:
            break
        outcome = _transaction(db, [items[i] for i in pending], retries, owners)
        again = []
        for index, result in zip(pending, outcome, strict=True):
            if result is None:
                again.append(index)
            else:
                decided[index] = result
        pending = again
    for index in pending:
        decided[index] = Result(items[index].instance, FULL, LOST_RACES.format(n=retries))
    answered = [decided[i] for i in range(len(items))]
    for result in answered:
        CLAIMS.labels(result.outcome).inc()
    return answered


def _transaction(
    db: Database, chosen: list[ClaimItem], retries: int, known: Owners
) -> list[Result | None]:
    last: list[OwnerIds] = []

    def once(conn: Connection) -> list[Result | None]:
        last[:] = [known.for_transaction()]
        return _once(conn, chosen, last[0])

    results = atomically(db, once, retries, operation=OPERATION)
    known.keep(last[0])
    return results


def _taken(item: ClaimItem, row: Instance | None, seen: set[str]) -> str | None:
    """Why ``item`` cannot be claimed whatever the host (None: it may be)."""
    if item.instance in seen:
        return "claimed twice in one batch"
    seen.add(item.instance)
    if row is None:
        return "no such instance"
    if row.state != QUEUED:
        return f"the instance is {row.state}" + (f" on {row.host}" if row.host else "")
    if row.attempt != item.attempt:
        return f"the instance is at attempt {row.attempt}, not {item.attempt}"
    return None


def _once(conn: Connection, items: Sequence[ClaimItem], owners: OwnerIds) -> list[Result | None]:
    """One transaction over ``items``: a result each, None for a lost provider swap."""
    rows = instances.read(conn, [i.instance for i in items])
    results: list[Result | None] = [None] * len(items)
    seen: set[str] = set()
    plain: list[tuple[int, Claim, Instance]] = []
    grouped: list[tuple[int, Claim, Instance]] = []
    for index, item in enumerate(items):
        row = rows.get(item.instance)
        why = _taken(item, row, seen)
        if why is not None or row is None:
            results[index] = Result(item.instance, TAKEN, why or "")
            continue
        claim_ = _claim(item, row)
        (grouped if row.server_group else plain).append((index, claim_, row))
    classes = ResourceClassCache(conn)
    _resolve(conn, owners, [r for _, _, r in plain + grouped])
    verdicts = _write(conn, [c for _, c, _ in plain], [r for _, _, r in plain], classes, owners)
    for (index, _, _), verdict in zip(plain, verdicts, strict=True):
        results[index] = _result(items[index], verdict)
    for index, claim_, row in grouped:
        results[index] = _grouped(conn, claim_, row, classes, owners)
    won = [(items[i], rows[items[i].instance]) for i, r in enumerate(results) if _won(r)]
    _settle(conn, won)
    return results


def _resolve(conn: Connection, owners: OwnerIds, rows: Sequence[Instance]) -> None:
    """Every owner's ids read (or created) up front, once each, outside any savepoint: the
    write then finds them all (an id created in a savepoint rolled back would not exist)."""
    for project, user in sorted({(r.project_id, r.user_id) for r in rows}):
        owners.project(conn, project)
        owners.user(conn, user)
    owners.committed(True)  # valid for the rest of this transaction


def _won(result: Result | None) -> bool:
    return result is not None and result.outcome == CLAIMED_OUTCOME


def _claim(item: ClaimItem, row: Instance) -> Claim:
    rules = Rules(required_traits=row.required, forbidden_traits=row.forbidden, enabled_only=True)
    return Claim(item.instance, item.host, {item.host: dict(row.resources)}, rules)


def _write(
    conn: Connection,
    claims: Sequence[Claim],
    rows: Sequence[Instance],
    classes: ResourceClassCache,
    owners: OwnerIds,
) -> list[Verdict]:
    """The write engine's batch: one request (one new consumer) per claim."""
    if not claims:
        return []
    requests = [
        [NewConsumer(c.instance_uuid, c.allocation, r.project_id, r.user_id)]
        for c, r in zip(claims, rows, strict=True)
    ]
    rules = recheck.for_batch([[c] for c in claims])
    return batch.write(conn, requests, classes, owners, rules=rules)


def _result(item: ClaimItem, verdict: Verdict) -> Result | None:
    if verdict.ok:
        return Result(item.instance, CLAIMED_OUTCOME)
    if verdict.kind == batch.CONFLICT:
        return None  # judged again in the next transaction
    if verdict.kind == batch.EXISTS:
        return Result(item.instance, TAKEN, "the instance already holds allocations")
    return Result(item.instance, FULL, verdict.message)


def _grouped(
    conn: Connection, claim_: Claim, row: Instance, classes: ResourceClassCache, owners: OwnerIds
) -> Result | None:
    """A server-group claim in a savepoint: the write, then the group rule."""
    item = ClaimItem(claim_.instance_uuid, claim_.host_uuid, row.attempt)
    try:
        with conn.begin_nested():
            verdict = _write(conn, [claim_], [row], classes, owners)[0]
            if verdict.ok:
                groups.enforce(conn, str(row.server_group), [(item.instance, item.host)])
    except GroupViolation as exc:
        return Result(item.instance, GROUP, exc.message)
    return _result(item, verdict)


def _settle(conn: Connection, won: Sequence[tuple[ClaimItem, Instance]]) -> None:
    """The claimed instances' state moved (compare-and-swap), their reservations consumed."""
    if not won:
        return
    rows = [row for _, row in won]
    hosts = {item.instance: item.host for item, _ in won}
    common = {"state": CLAIMED, "published": True, "reservation": None, "reason": None}
    instances.move_each(conn, rows, "host", hosts, common, utcnow())
    quotas.release_many(conn, [r.reservation for r in rows if r.reservation])
