"""The outbox: an instance's message is sent after the transaction that calls for it.

A queued instance with ``published = false`` still needs its work message
(subject ``berth.work.<queue>``, ``Nats-Msg-Id: <instance>:<attempt>``); a
``deleting`` one its delete message (``berth.delete.<agent>.<host>``,
``Nats-Msg-Id: <instance>:<attempt>:delete``).  :func:`send` publishes them
and then marks the rows published, by compare-and-swap on the state and
attempt they were sent in (a row that moved meanwhile stays as its mover
left it).  A crash or a NATS outage between the commit and the publish
leaves ``published = false``, and the sweeper sends them again (the same
message id, so the stream drops a copy it already holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, select

from berth.db.clock import utcnow
from berth.db.engine import Database
from berth.db.tables import PULL_HOST
from berth.pull.instances import CHUNK, Instance, update_each
from berth.pull.messages import FAILED, Message
from berth.pull.model import DELETING, QUEUED, delete_subject, work_subject

if TYPE_CHECKING:
    from berth.pull.bus import Bus


def message_of(instance: Instance, agents: Mapping[str, str]) -> Message | None:
    """The message an unpublished instance needs (None: a delete whose host has no agent)."""
    if instance.state == QUEUED:
        work = instance.work()
        return Message(work_subject(instance.queue), orjson.dumps(work.as_body()), work.msg_id)
    agent = agents.get(instance.host or "")
    if instance.state != DELETING or agent is None:
        return None
    body = {"instance": instance.uuid, "request": instance.request, "host": instance.host}
    msg_id = f"{instance.uuid}:{instance.attempt}:delete"
    return Message(delete_subject(agent, str(instance.host)), orjson.dumps(body), msg_id)


def agents_of(conn: Connection, hosts: Sequence[str]) -> dict[str, str]:
    """The agent running each of ``hosts`` (as its last heartbeat said)."""
    wanted = sorted({h for h in hosts if h})
    if not wanted:
        return {}
    query = select(PULL_HOST.c.host_uuid, PULL_HOST.c.agent)
    return dict(conn.execute(query.where(PULL_HOST.c.host_uuid.in_(wanted))).tuples().all())


def send(db: Database, bus: Bus, pending: Sequence[Instance]) -> int:
    """Publish the messages of ``pending`` and mark the rows published; how many were.

    Raises Unavailable when NATS cannot be reached (nothing is marked).
    """
    with db.read() as conn:
        agents = agents_of(conn, [i.host or "" for i in pending if i.state == DELETING])
    sendable = [(i, m) for i in pending if (m := message_of(i, agents)) is not None]
    if not sendable:
        return 0
    sent = bus.publish([m for _, m in sendable])
    done = [i for (i, _), ack in zip(sendable, sent, strict=True) if ack != FAILED]
    with db.write() as conn:
        mark_published(conn, done)
    return len(done)


def mark_published(conn: Connection, done: Sequence[Instance]) -> None:
    """``published = true`` on the rows of ``done`` still in the state and attempt sent."""
    for start in range(0, len(done), CHUNK):
        chunk = done[start : start + CHUNK]
        match: dict[str, dict[str, Any]] = {
            "state": {i.uuid: i.state for i in chunk},
            "attempt": {i.uuid: i.attempt for i in chunk},
        }
        update_each(conn, match, {"published": True, "updated_at": utcnow()})
