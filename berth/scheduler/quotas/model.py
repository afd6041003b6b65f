"""What quotas are made of: scopes, usage, excesses, reservations, and the refusal.

A *scope* is a project (its own limits) or one user in a project.  Every
resource is named as limits name it: ``instances``, or a resource class.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from berth.db.clock import utcnow
from berth.placement import errors

# The resource that counts instances (consumers holding allocations, plus
# reserved instances); resource classes are upper case, so it cannot clash.
INSTANCES = "instances"
QUOTA_EXCEEDED = "berth.scheduler.quota_exceeded"
# How retries of quota writes are counted (``berth_write_retries{operation=...}``).
OPERATION = "quotas"
MAX_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Scope:
    """A project (``user_id`` None: the project's own limits) or a user in a project."""

    project_id: str
    user_id: str | None = None

    def __str__(self) -> str:
        if self.user_id is None:
            return f"project {self.project_id}"
        return f"user {self.user_id} in project {self.project_id}"


@dataclass(frozen=True)
class Usage:
    """A scope's usage per resource: ``in_use`` from allocations, ``reserved`` by live
    reservations (``instances`` in both)."""

    in_use: Mapping[str, int] = field(default_factory=dict)
    reserved: Mapping[str, int] = field(default_factory=dict)

    def counted(self, resource: str) -> int:
        """What counts against a limit of ``resource``: in use plus reserved."""
        return self.in_use.get(resource, 0) + self.reserved.get(resource, 0)

    def resources(self) -> set[str]:
        """Every resource with something in use or reserved, and ``instances``."""
        return {INSTANCES, *self.in_use, *self.reserved}


@dataclass(frozen=True)
class Excess:
    """One limit a request would break: where, what, and the numbers."""

    scope: Scope
    resource: str
    limit: int
    in_use: int
    reserved: int
    asked: int

    def __str__(self) -> str:
        who = str(self.scope)
        return (
            f"{who[0].upper()}{who[1:]} is limited to {self.limit} {self.resource}, "
            f"has {self.in_use} in use and {self.reserved} reserved for queued requests, "
            f"and this request asks for {self.asked} more."
        )

    def as_body(self) -> dict[str, object]:
        """The excess as JSON (for an API that lists them beside the message)."""
        return {
            "project_id": self.scope.project_id,
            "user_id": self.scope.user_id,
            "resource": self.resource,
            "limit": self.limit,
            "in_use": self.in_use,
            "reserved": self.reserved,
            "asked": self.asked,
        }


class QuotaExceeded(errors.Conflict):
    """A reservation would take a scope past a limit; carries every limit it breaks."""

    default_code = QUOTA_EXCEEDED

    def __init__(self, excesses: Iterable[Excess]) -> None:
        self.excesses = tuple(excesses)
        super().__init__("Quota exceeded. " + " ".join(str(e) for e in self.excesses))


@dataclass(frozen=True)
class Reservation:
    """Amounts set aside for one queued request until it is claimed, released or
    ``expires_at`` passes.  ``resources`` are totals for all its instances,
    ``instances`` among them."""

    uuid: str
    project_id: str
    user_id: str
    resources: Mapping[str, int]
    expires_at: datetime.datetime
    created_at: datetime.datetime

    @property
    def instances(self) -> int:
        """How many instances the reservation holds."""
        return self.resources.get(INSTANCES, 0)


def moment(now: datetime.datetime | None) -> datetime.datetime:
    """``now`` as the database stores times: naive UTC, whole seconds (None: the clock)."""
    if now is None:
        return utcnow()
    if now.tzinfo is not None:
        now = now.astimezone(datetime.UTC).replace(tzinfo=None)
    return now.replace(microsecond=0)
