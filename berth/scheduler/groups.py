"""Server groups: their policy, their members' hosts, and the rule check inside a claim.

A group row carries a generation.  Every transaction that places members
(:func:`enforce`) compare-and-swaps it, *then* reads the members' hosts and
checks the policy, in the same transaction as the allocations.  Two claims
into one group therefore serialise on that row: the second one's swap finds
a new generation, rolls back and runs again, now seeing the first one's
member.  No row is locked with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, insert, select, update

from berth.db.clock import utcnow
from berth.db.tables import GROUP_MEMBER, SERVER_GROUP
from berth.placement import errors
from berth.scheduler.spec import POLICIES, ServerGroupSpec

GROUP_NOT_FOUND = "berth.scheduler.server_group_not_found"
GROUP_VIOLATION = "berth.scheduler.server_group_violation"
# How retries of group writes are counted (``berth_write_retries{operation=...}``).
OPERATION = "server_groups"


class GroupViolation(errors.Conflict):
    """Placing here would break the group's hard policy (not worth a retry)."""

    default_code = GROUP_VIOLATION


@dataclass
class ServerGroup:
    """A group as stored, with its members' hosts (provider uuid or None)."""

    id: int
    uuid: str
    name: str | None
    project_id: str | None
    user_id: str | None
    policy: str
    max_server_per_host: int | None
    generation: int
    members: dict[str, str | None] = field(default_factory=dict)
    created_at: datetime.datetime | None = None

    @property
    def per_host_limit(self) -> int:
        """How many members one host may hold under anti-affinity."""
        return self.max_server_per_host or 1

    def hosts(self, exclude: Iterable[str] = ()) -> Counter[str]:
        """Members per host, leaving out the instances in ``exclude``."""
        skip = set(exclude)
        return Counter(h for i, h in self.members.items() if h is not None and i not in skip)

    def as_body(self) -> dict[str, object]:
        """The JSON shape of ``GET /scheduler/server_groups/{uuid}``."""
        rules = (
            {"max_server_per_host": self.max_server_per_host} if self.max_server_per_host else {}
        )
        return {
            "uuid": self.uuid,
            "name": self.name,
            "policy": self.policy,
            "rules": rules,
            "project_id": self.project_id,
            "user_id": self.user_id,
            "generation": self.generation,
            "members": [{"instance_uuid": i, "host": h} for i, h in sorted(self.members.items())],
        }


def find(conn: Connection, uuid: str, with_members: bool = True) -> ServerGroup | None:
    """The group ``uuid`` (with members), or None."""
    row = conn.execute(select(SERVER_GROUP).where(SERVER_GROUP.c.uuid == uuid)).one_or_none()
    if row is None:
        return None
    group = ServerGroup(
        row.id,
        row.uuid,
        row.name,
        row.project_id,
        row.user_id,
        row.policy,
        row.max_server_per_host,
        row.generation,
        created_at=row.created_at,
    )
    if with_members:
        group.members = _members(conn, row.id)
    return group


def _members(conn: Connection, group_id: int) -> dict[str, str | None]:
    rows = conn.execute(
        select(GROUP_MEMBER.c.instance_uuid, GROUP_MEMBER.c.host_uuid).where(
            GROUP_MEMBER.c.group_id == group_id
        )
    )
    return {r.instance_uuid: r.host_uuid for r in rows}


def get(conn: Connection, uuid: str) -> ServerGroup:
    """The group ``uuid``; NotFound when there is none."""
    group = find(conn, uuid)
    if group is None:
        raise errors.NotFound(f"No server group with uuid {uuid} found", code=GROUP_NOT_FOUND)
    return group


def list_groups(conn: Connection) -> list[ServerGroup]:
    """Every group, without members."""
    return [
        ServerGroup(
            r.id, r.uuid, r.name, r.project_id, r.user_id, r.policy, r.max_server_per_host,
            r.generation, created_at=r.created_at,
        )
        for r in conn.execute(select(SERVER_GROUP).order_by(SERVER_GROUP.c.id))
    ]  # fmt: skip


def _check_policy(policy: str | None, max_server_per_host: int | None) -> str:
    if policy not in POLICIES:
        raise errors.InvalidInput(f"policy must be one of {', '.join(POLICIES)}")
    if max_server_per_host is not None and policy != "anti-affinity":
        raise errors.InvalidInput("max_server_per_host is only valid with anti-affinity")
    return policy


def create(
    conn: Connection, spec: ServerGroupSpec, project_id: str | None, user_id: str | None
) -> ServerGroup:
    """Insert a group (a duplicate uuid is a Conflict)."""
    if find(conn, spec.uuid, with_members=False) is not None:
        raise errors.Conflict(f"Server group {spec.uuid} already exists")
    return _insert(conn, spec, project_id, user_id)


def _insert(
    conn: Connection, spec: ServerGroupSpec, project_id: str | None, user_id: str | None
) -> ServerGroup:
    """The INSERT; a concurrent insert of the same uuid is an IntegrityError (retry)."""
    policy = _check_policy(spec.policy, spec.max_server_per_host)
    conn.execute(
        insert(SERVER_GROUP).values(
            uuid=spec.uuid,
            name=spec.name,
            project_id=project_id,
            user_id=user_id,
            policy=policy,
            max_server_per_host=spec.max_server_per_host,
            generation=0,
            created_at=utcnow(),
        )
    )
    return get(conn, spec.uuid)


def ensure(
    conn: Connection, spec: ServerGroupSpec, project_id: str | None, user_id: str | None
) -> ServerGroup:
    """The group named by ``spec``, created when the spec gives a policy.

    Two requests creating the same group race on its unique uuid: the loser
    gets an IntegrityError, and :func:`~berth.placement.write.retry.atomically`
    runs it again, now finding the group.
    """
    group = find(conn, spec.uuid)
    if group is None and spec.policy is not None:
        return _insert(conn, spec, project_id, user_id)
    return ensure_found(group, spec)


def ensure_found(group: ServerGroup | None, spec: ServerGroupSpec) -> ServerGroup:
    """``group`` if it matches ``spec``: NotFound when absent, Conflict on another policy."""
    if group is None:
        raise errors.NotFound(f"No server group with uuid {spec.uuid} found", code=GROUP_NOT_FOUND)
    if spec.policy is not None and (spec.policy, spec.max_server_per_host) != (
        group.policy,
        group.max_server_per_host,
    ):
        raise errors.Conflict(f"Server group {spec.uuid} exists with another policy or rules")
    return group


def delete_group(conn: Connection, uuid: str) -> None:
    """Delete a group and its member rows."""
    group = get(conn, uuid)
    conn.execute(delete(GROUP_MEMBER).where(GROUP_MEMBER.c.group_id == group.id))
    conn.execute(delete(SERVER_GROUP).where(SERVER_GROUP.c.id == group.id))


def bump(conn: Connection, group_id: int, expected: int) -> None:
    """Compare-and-swap the group generation; ConcurrentUpdate when it moved."""
    done = conn.execute(
        update(SERVER_GROUP)
        .where(SERVER_GROUP.c.id == group_id, SERVER_GROUP.c.generation == expected)
        .values(generation=expected + 1, updated_at=utcnow())
    )
    if done.rowcount != 1:
        raise errors.ConcurrentUpdate("server group generation conflict")


def _violation(group: ServerGroup, hosts: Counter[str], host: str) -> str | None:
    if group.policy == "anti-affinity" and hosts[host] >= group.per_host_limit:
        return f"anti-affinity: host {host} already holds {hosts[host]} member(s)"
    if group.policy == "affinity" and hosts and host not in hosts:
        return f"affinity: the group's members are on {', '.join(sorted(hosts))}"
    return None


def enforce(conn: Connection, group_uuid: str, placed: list[tuple[str, str]]) -> None:
    """Record ``(instance, host)`` members, checking the policy; call inside the claim.

    Swap the generation first, then read the members: after a successful
    swap no other claim into this group can commit until this one does.
    """
    group = find(conn, group_uuid, with_members=False)
    if group is None:
        raise GroupViolation(f"server group {group_uuid} was deleted")
    bump(conn, group.id, group.generation)
    group.members = _members(conn, group.id)
    instances = [instance for instance, _ in placed]
    hosts = group.hosts(exclude=instances)
    for _, host in placed:
        problem = _violation(group, hosts, host)
        if problem is not None:
            raise GroupViolation(problem)
        hosts[host] += 1
    now = utcnow()
    conn.execute(
        delete(GROUP_MEMBER).where(
            GROUP_MEMBER.c.group_id == group.id, GROUP_MEMBER.c.instance_uuid.in_(instances)
        )
    )
    conn.execute(
        insert(GROUP_MEMBER),
        [
            {"group_id": group.id, "instance_uuid": i, "host_uuid": h, "created_at": now}
            for i, h in placed
        ],
    )


def forget(conn: Connection, group_uuid: str, instances: list[str]) -> None:
    """Remove members (a rolled-back claim, a deleted instance), bumping the generation."""
    group = find(conn, group_uuid, with_members=False)
    if group is None:
        return
    bump(conn, group.id, group.generation)
    conn.execute(
        delete(GROUP_MEMBER).where(
            GROUP_MEMBER.c.group_id == group.id, GROUP_MEMBER.c.instance_uuid.in_(instances)
        )
    )


def set_member(conn: Connection, group_uuid: str, instance: str, host: str | None) -> None:
    """Add or move one member (the API's PUT), without a policy check."""
    group = get(conn, group_uuid)
    bump(conn, group.id, group.generation)
    conn.execute(
        delete(GROUP_MEMBER).where(
            GROUP_MEMBER.c.group_id == group.id, GROUP_MEMBER.c.instance_uuid == instance
        )
    )
    conn.execute(
        insert(GROUP_MEMBER).values(
            group_id=group.id, instance_uuid=instance, host_uuid=host, created_at=utcnow()
        )
    )
