"""Reservations: set amounts aside for a queued request, judged against the limits.

:func:`reserve`, in the caller's write transaction (run it through
``berth.placement.write.retry.atomically`` with ``operation=OPERATION``;
the caller may insert its queued request in the same transaction):

1. read the project's generation (``quota_projects``; none yet: no row);
2. read the limits of the project and of the user, in one statement;
3. count usage of both scopes, in one statement (:mod:`.usage`);
4. judge (:mod:`.judge`): over a limit raises :class:`QuotaExceeded`,
   listing every limit broken, and nothing is written;
5. insert the reservation's rows;
6. swap the project's generation: ``UPDATE quota_projects SET generation =
   g + 1 WHERE project_id = ? AND generation = g`` (no row yet: insert it
   with generation 1).  No row changed, or a duplicate key on the insert,
   is a lost race: ConcurrentUpdate, and ``atomically`` runs the whole
   transaction again;
7. delete the project's expired reservations (serialised behind the swap).

Why that is enough: two reservations of one project both read a generation
before counting; whichever commits second finds it moved and runs again,
now counting the first one's rows.  The generation is read before the
usage, so a count can only be newer than the generation it is judged
under.  No row is locked with ``SELECT ... FOR UPDATE``, which a
multi-writer Galera cluster does not honour across nodes; there the swap
fails certification instead, which ``atomically`` also runs again.  Per-user
limits are judged under the same project row.

Releasing (:func:`release`) and consuming (:func:`consume`, in a claim's
transaction) only lower what is counted, so they move no generation.
"""

from __future__ import annotations

import datetime
import uuid as uuidlib
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from berth.db.arrays import BulkInsert
from berth.db.tables import QUOTA_PROJECT, QUOTA_RESERVATION
from berth.placement import errors
from berth.scheduler.quotas.judge import judge
from berth.scheduler.quotas.limits import check_scope, limits_of
from berth.scheduler.quotas.model import INSTANCES, QuotaExceeded, Reservation, Scope, moment
from berth.scheduler.quotas.usage import usage_of

LOST_RACE = "another reservation of the project committed first"
# Rows deleted per statement by a purge (bounded IN lists).
PURGE_BATCH = 500


def _asked(resources: Mapping[str, int], count: int) -> dict[str, int]:
    """Totals for ``count`` instances of ``resources`` each, ``instances`` included."""
    if type(count) is not int or count < 1:
        raise errors.InvalidInput(f"A reservation is for one instance or more, not {count}.")
    if INSTANCES in resources:
        raise errors.InvalidInput(f"'{INSTANCES}' is counted, not asked for per instance.")
    bad = sorted(r for r, n in resources.items() if type(n) is not int or n < 0)
    if bad:
        raise errors.InvalidInput(f"Amounts must be whole numbers, 0 or more: {', '.join(bad)}")
    return {INSTANCES: count} | {r: n * count for r, n in resources.items() if n > 0}


def _generation(conn: Connection, project_id: str) -> int | None:
    return conn.execute(
        select(QUOTA_PROJECT.c.generation).where(QUOTA_PROJECT.c.project_id == project_id)
    ).scalar_one_or_none()


def _swap(conn: Connection, project_id: str, seen: int | None) -> None:
    """Move the project's generation on from ``seen``; ConcurrentUpdate when it moved first."""
    if seen is None:
        try:
            conn.execute(insert(QUOTA_PROJECT).values(project_id=project_id, generation=1))
        except IntegrityError:
            raise errors.ConcurrentUpdate(LOST_RACE) from None
        return
    swapped = conn.execute(
        update(QUOTA_PROJECT)
        .where(QUOTA_PROJECT.c.project_id == project_id, QUOTA_PROJECT.c.generation == seen)
        .values(generation=seen + 1)
    )
    if swapped.rowcount != 1:
        raise errors.ConcurrentUpdate(LOST_RACE)


_ROWS = BulkInsert(
    QUOTA_RESERVATION,
    ("uuid", "project_id", "user_id", "resource", "amount", "expires_at", "created_at"),
)


def _insert(conn: Connection, reservations: Sequence[Reservation]) -> None:
    _ROWS.run(
        conn,
        [
            (r.uuid, r.project_id, r.user_id, resource, amount, r.expires_at, r.created_at)
            for r in reservations
            for resource, amount in sorted(r.resources.items())
        ],
    )


def reserve(
    conn: Connection,
    scope: Scope,
    resources: Mapping[str, int],
    count: int = 1,
    *,
    ttl_seconds: int,
    now: datetime.datetime | None = None,
) -> Reservation:
    """Reserve ``count`` instances of ``resources`` (class -> amount per instance) for the
    user of ``scope`` until ``ttl_seconds`` from ``now``; QuotaExceeded when over a limit.

    Runs in the caller's write transaction; a lost race raises ConcurrentUpdate
    (run it through ``atomically``).
    """
    return _reserve(conn, scope, resources, count, 1, ttl_seconds, now)[0]


def reserve_each(
    conn: Connection,
    scope: Scope,
    resources: Mapping[str, int],
    count: int,
    *,
    ttl_seconds: int,
    now: datetime.datetime | None = None,
) -> list[Reservation]:
    """As :func:`reserve`, judged for all ``count`` instances at once, but set aside as one
    reservation per instance, so that each instance's claim consumes its own
    (pull dispatch claims the instances of a request one by one)."""
    return _reserve(conn, scope, resources, count, count, ttl_seconds, now)


def _reserve(
    conn: Connection,
    scope: Scope,
    resources: Mapping[str, int],
    count: int,
    parts: int,
    ttl_seconds: int,
    now: datetime.datetime | None,
) -> list[Reservation]:
    """Judge ``count`` instances, then insert ``parts`` equal reservations of them."""
    if scope.user_id is None:
        raise errors.InvalidInput("A reservation is made for a user in a project.")
    check_scope(scope)
    if type(ttl_seconds) is not int or ttl_seconds < 1:
        raise errors.InvalidInput(f"A reservation lives 1 second or more, not {ttl_seconds}.")
    asked = _asked(resources, count)
    at = moment(now)
    project = Scope(scope.project_id)
    seen = _generation(conn, scope.project_id)  # first: see the module docstring
    limits = limits_of(conn, [project, scope])
    # Only the limits of what is asked are judged: only those scopes' usage is read.
    judged = {s: lims for s, lims in limits.items() if set(lims) & set(asked)}
    if judged:
        user = scope.user_id if scope in judged else None
        wanted = {r for lims in judged.values() for r in lims} & set(asked)
        counted = usage_of(conn, scope.project_id, user, at, wanted)
        excesses = judge(judged, counted, asked)
        if excesses:
            raise QuotaExceeded(excesses)
    each = _asked(resources, count // parts)
    expires = at + datetime.timedelta(seconds=ttl_seconds)
    made = [
        Reservation(str(uuidlib.uuid4()), scope.project_id, scope.user_id, each, expires, at)
        for _ in range(parts)
    ]
    _insert(conn, made)
    _swap(conn, scope.project_id, seen)
    _purge(conn, at, scope.project_id)
    return made


def find(conn: Connection, uuid: str, now: datetime.datetime | None = None) -> Reservation | None:
    """The reservation ``uuid`` if it is live at ``now`` (None: released, consumed or expired)."""
    QR = QUOTA_RESERVATION
    rows = conn.execute(select(QR).where(QR.c.uuid == uuid, QR.c.expires_at > moment(now))).all()
    if not rows:
        return None
    first = rows[0]
    resources = {r.resource: int(r.amount) for r in rows}
    return Reservation(
        first.uuid, first.project_id, first.user_id, resources, first.expires_at, first.created_at
    )


def release(conn: Connection, uuid: str) -> bool:
    """Drop the reservation ``uuid`` (a request failed or was deleted); False when it was
    gone already.  Idempotent."""
    return bool(
        conn.execute(delete(QUOTA_RESERVATION).where(QUOTA_RESERVATION.c.uuid == uuid)).rowcount
    )


def release_many(conn: Connection, uuids: Sequence[str]) -> int:
    """Drop the reservations ``uuids`` (claims consuming them, failures releasing them);
    how many rows went.  Idempotent, and only lowers what is counted, as :func:`release`."""
    QR = QUOTA_RESERVATION
    deleted = 0
    for start in range(0, len(uuids), PURGE_BATCH):
        batch = list(uuids[start : start + PURGE_BATCH])
        deleted += conn.execute(delete(QR).where(QR.c.uuid.in_(batch))).rowcount
    return deleted


def consume(
    conn: Connection, uuid: str, now: datetime.datetime | None = None
) -> Reservation | None:
    """In a claim's transaction, which writes the request's allocations: drop the
    reservation, which those allocations now stand for.  Returns it if it was still
    live at ``now`` (None: it expired or was released, and counted for nothing)."""
    live = find(conn, uuid, now)
    release(conn, uuid)
    return live


def _purge(conn: Connection, now: datetime.datetime, project_id: str | None = None) -> int:
    """Delete reservations expired at ``now`` (of one project, or all); rows deleted.

    The rows are found by a plain read and deleted by primary key, so the
    delete locks only them: a range delete would also wait on the first row
    past the range, which may be another reservation not yet committed.
    """
    QR = QUOTA_RESERVATION
    query = select(QR.c.id).where(QR.c.expires_at <= now)
    if project_id is not None:
        query = query.where(QR.c.project_id == project_id)
    ids = list(conn.execute(query).scalars())
    deleted = 0
    for start in range(0, len(ids), PURGE_BATCH):
        batch = ids[start : start + PURGE_BATCH]
        deleted += conn.execute(delete(QR).where(QR.c.id.in_(batch))).rowcount
    return deleted


def purge_expired(conn: Connection, now: datetime.datetime | None = None) -> int:
    """Delete every reservation expired at ``now``; how many rows went.  Only tidies:
    expired reservations count for nothing already."""
    return _purge(conn, moment(now))
