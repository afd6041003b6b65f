"""Messages NATS lost: rows that say their message waits in a stream that no longer has it.

A NATS server that lost its JetStream store (a wiped directory, a new volume, a
new server) comes back without streams.  The sweeper makes the streams again at
its next pass, but the messages of the instances already published are gone
while their rows say ``published = true``: the outbox would never send them
again, and the instances would wait until they time out.  So each sweeper pass
that has rows to look at compares, per subject, two counts::

    rows       instances queued (their work subject) or deleting (their agent's
               delete subject), published, and unchanged for GRACE_S
    messages   what the stream holds per subject (stream info with subjects_filter)

A row that is queued and published has its message in the stream until a host
claims it (an agent acks only after its claim or when told ``taken``), so a
subject with fewer messages than rows has lost some.  The rows are read first
(no rows: NATS is not asked), then the messages, then the suspect subjects' rows
again: a row claimed and its message acked between the two reads is not counted
the second time, and a row still there was unchanged since before the messages
were counted, so its message, if not lost, was counted.  Every row of a subject
found short is published again with its own ``Nats-Msg-Id``: the stream drops
the copies it still holds (within ``pull_duplicate_window_s``; one older than
that is delivered twice, and the second claim is answered ``taken``).  What is
stored anew is counted as ``lost``.

:class:`Streams` remembers when each stream was created, so that the sweeper
knows when one was made again (its consumers, the agents' delete consumers and
the queue bucket went with the store) and runs a whole reconcile.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import ColumnElement, Connection, func, select

from berth.db.engine import Database
from berth.db.tables import PULL_HOST, PULL_INSTANCE
from berth.pull import instances, outbox
from berth.pull.messages import STORED
from berth.pull.model import (
    DELETE_STREAM,
    DELETE_SUBJECTS,
    DELETING,
    QUEUED,
    WORK_STREAM,
    WORK_SUBJECTS,
    delete_subject,
    work_subject,
)
from berth.settings import Settings

if TYPE_CHECKING:
    from berth.pull.bus import Bus

log = structlog.get_logger("berth.pull.recovery")

# A row published less than this long ago may be read before its message is counted.
GRACE_S = 3.0
PI, PH = PULL_INSTANCE, PULL_HOST
# One subject, as the rows say it: (stream, subject, state, queue or host).
Subject = tuple[str, str, str, str]


class Streams:
    """When each stream was created, as one sweeper saw it last."""

    def __init__(self) -> None:
        self._created: dict[str, datetime.datetime] = {}

    def renewed(self, created: Mapping[str, datetime.datetime | None]) -> list[str]:
        """The streams created at another time than when last seen: made again."""
        return sorted(
            name
            for name, at in created.items()
            if at is not None and self._created.get(name, at) != at
        )

    def seen(self, created: Mapping[str, datetime.datetime | None]) -> None:
        """Remember these creation times (once what a renewal calls for is done)."""
        self._created.update({n: at for n, at in created.items() if at is not None})


def _waiting(state: str, cutoff: datetime.datetime) -> tuple[ColumnElement[bool], ...]:
    """Rows in ``state`` whose message should be in a stream: published, unchanged since
    ``cutoff``."""
    return (PI.c.published.is_(True), PI.c.state == state, PI.c.updated_at < cutoff)


def _subjects(conn: Connection, cutoff: datetime.datetime) -> Counter[Subject]:
    """How many waiting rows each subject has (two statements: the work rows need no join,
    and a delete whose host has no agent has no message either)."""
    found: Counter[Subject] = Counter()
    work = select(PI.c.queue, func.count()).where(*_waiting(QUEUED, cutoff))
    for queue, count in conn.execute(work.group_by(PI.c.queue)):
        found[WORK_STREAM, work_subject(queue), QUEUED, queue] = int(count)
    deletes = (
        select(PI.c.host, PH.c.agent, func.count())
        .select_from(PI.join(PH, PH.c.host_uuid == PI.c.host))
        .where(*_waiting(DELETING, cutoff))
        .group_by(PI.c.host, PH.c.agent)
    )
    for host, agent, count in conn.execute(deletes):
        found[DELETE_STREAM, delete_subject(agent, host), DELETING, host] = int(count)
    return found


def _held(bus: Bus, streams: set[str]) -> dict[str, int]:
    """The messages each subject holds, in ``streams``."""
    held: dict[str, int] = {}
    for stream, subjects in ((WORK_STREAM, WORK_SUBJECTS), (DELETE_STREAM, DELETE_SUBJECTS)):
        if stream in streams:
            held |= bus.subject_counts(stream, subjects)
    return held


def send_lost(db: Database, bus: Bus, settings: Settings, now: datetime.datetime) -> int:
    """Publish again the rows of every subject the streams hold too few messages of (see
    the module docstring); how many messages the streams did not have."""
    cutoff = now - datetime.timedelta(seconds=GRACE_S)
    with db.read() as conn:
        rows = _subjects(conn, cutoff)
    if not rows:
        return 0
    held = _held(bus, {stream for stream, _, _, _ in rows})
    if all(held.get(subject, 0) >= n for (_, subject, _, _), n in rows.items()):
        return 0
    with db.read() as conn:
        again = _subjects(conn, cutoff)
    short = sorted(s for s, n in again.items() if held.get(s[1], 0) < n)
    lost = sum(_send_again(db, bus, settings, cutoff, s) for s in short)
    if lost:
        log.warning("messages nats lost sent again", lost=lost, subjects=[s[1] for s in short])
    return lost


def _send_again(
    db: Database, bus: Bus, settings: Settings, cutoff: datetime.datetime, subject: Subject
) -> int:
    """Publish the messages of one subject's waiting rows again, a batch at a time; how
    many the stream stored anew."""
    _, _, state, key = subject
    where = (*_waiting(state, cutoff), (PI.c.queue if state == QUEUED else PI.c.host) == key)
    stored, after = 0, 0
    while True:
        with db.read() as conn:
            query = select(PI.c.id, PI.c.uuid).where(*where, PI.c.id > after).order_by(PI.c.id)
            ids = conn.execute(query.limit(settings.pull_sweep_batch)).all()
            rows = instances.read(conn, [uuid for _, uuid in ids])
            agents = outbox.agents_of(conn, [i.host or "" for i in rows.values()])
        waiting = [i for i in rows.values() if i.state == state and i.published]
        messages = [m for i in waiting if (m := outbox.message_of(i, agents)) is not None]
        if messages:
            stored += sum(ack == STORED for ack in bus.publish(messages))
        if len(ids) < settings.pull_sweep_batch:
            return stored
        after = ids[-1].id
