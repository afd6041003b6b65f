"""What pull dispatch is made of: instance states, queue names and subjects, messages.

Names and shapes here are the wire contract of docs/pull.md, shared with
the agent; nothing here touches the database or NATS.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from berth.settings import Settings

# Instance states, least advanced first (a request's state is its least advanced
# instance's).
QUEUED, CLAIMED, ACTIVE, DELETING, FAILED, DELETED = (
    "queued",
    "claimed",
    "active",
    "deleting",
    "failed",
    "deleted",
)
STATES = (QUEUED, CLAIMED, ACTIVE, DELETING, FAILED, DELETED)

# Claim outcomes (POST /scheduler/pull/claims) and the other agent calls' results.
CLAIMED_OUTCOME, TAKEN, FULL, GROUP = "claimed", "taken", "full", "group"
ACTIVE_OUTCOME, DELETED_OUTCOME = "active", "deleted"

WORK_STREAM = "BERTH_WORK"
WORK_SUBJECTS = "berth.work.>"
DELETE_STREAM = "BERTH_DELETE"
DELETE_SUBJECTS = "berth.delete.>"
QUEUES_BUCKET = "berth-queues"

REQUEST_NOT_FOUND = "berth.scheduler.request_not_found"


def least_advanced(states: Iterable[str]) -> str:
    """The state of a request: its least advanced instance's (queued for none)."""
    return min(states, key=STATES.index, default=QUEUED)


def queue_name(flavor_uuid: str, capabilities: Iterable[str] = ()) -> str:
    """``f<flavor hex>``, or ``f<flavor hex>-c<12 hex of sha1 of the sorted capabilities>``."""
    name = f"f{uuidlib.UUID(flavor_uuid).hex}"
    caps = sorted(set(capabilities))
    if not caps:
        return name
    return f"{name}-c{hashlib.sha1(','.join(caps).encode()).hexdigest()[:12]}"


def work_subject(queue: str) -> str:
    """The subject a queue's messages are published on (and its consumer's filter)."""
    return f"berth.work.{queue}"


def delete_subject(agent: str, host: str) -> str:
    """The subject of a delete for ``host``, which ``agent`` runs."""
    return f"berth.delete.{agent}.{host}"


def delete_consumer(agent: str) -> str:
    """The durable consumer of an agent's deletes."""
    return f"del-{agent}"


def dumps(value: Any) -> str:
    """JSON text with sorted keys (stored columns, queue values)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True)
class Queue:
    """One work queue: a flavor, plus the capabilities a request asked for."""

    flavor_uuid: str
    flavor_name: str
    resources: Mapping[str, int]
    flavor_required: frozenset[str] = frozenset()
    forbidden: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The queue's name (also its consumer's)."""
        return queue_name(self.flavor_uuid, self.capabilities)

    @property
    def subject(self) -> str:
        """Where its messages go."""
        return work_subject(self.name)

    @property
    def required(self) -> frozenset[str]:
        """The flavor's required traits and the capabilities."""
        return self.flavor_required | self.capabilities

    def as_body(self) -> dict[str, Any]:
        """The queue JSON (key-value value and ``GET /scheduler/pull/queues`` item)."""
        return {
            "name": self.name,
            "subject": self.subject,
            "flavor": {"uuid": self.flavor_uuid, "name": self.flavor_name},
            "resources": dict(sorted(self.resources.items())),
            "required": sorted(self.required),
            "forbidden": sorted(self.forbidden),
            "capabilities": sorted(self.capabilities),
        }


@dataclass(frozen=True)
class Work:
    """What an instance's work message says (the database row decides, not the message)."""

    instance: str
    request: str
    queue: str
    attempt: int
    resources: Mapping[str, int]
    required: frozenset[str]
    forbidden: frozenset[str]
    project_id: str
    user_id: str
    server_group: str | None = None

    @property
    def msg_id(self) -> str:
        """``<instance>:<attempt>``: a republish of the same attempt is deduplicated."""
        return f"{self.instance}:{self.attempt}"

    def as_body(self) -> dict[str, Any]:
        """The message JSON."""
        return {
            "instance": self.instance,
            "request": self.request,
            "queue": self.queue,
            "attempt": self.attempt,
            "resources": dict(sorted(self.resources.items())),
            "required": sorted(self.required),
            "forbidden": sorted(self.forbidden),
            "project_id": self.project_id,
            "user_id": self.user_id,
            "server_group": self.server_group,
        }


def reservation_ttl(settings: Settings) -> int:
    """How long an instance's quota reservation lives: past its queue timeout, long enough
    for a sweeper to fail it first."""
    return settings.pull_request_timeout_s + max(60, round(2 * settings.pull_sweep_interval_s))
