"""The request context: everything a request's filters and weighers need, computed once.

Built before the first host is looked at: class ids, the server group and
its members' hosts, the hosts of the ``same_host`` / ``different_host``
instances, the ignored hosts, the aggregate extra specs, the time before
which host state is too old.  It also carries
the choices already made for earlier instances of the same request (their
hosts and the resources they take), so the next instance sees them.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, or_, select

from berth.candidates.model import Universe
from berth.db import tables as t
from berth.db.clock import utcnow
from berth.scheduler.groups import ServerGroup
from berth.scheduler.hoststate import HostCatalog, HostState
from berth.scheduler.options import SchedulerConfig
from berth.scheduler.spec import RequestSpec


@dataclass
class Hints:
    """What the database says about the request's hints, read in one transaction."""

    group: ServerGroup | None = None
    same_hosts: set[str] | None = None  # root provider uuids; None: no same_host hint
    different_hosts: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def _hosts_of(conn: Connection, instances: list[str]) -> set[str]:
    """Root provider uuids of the hosts holding allocations of ``instances``."""
    if not instances:
        return set()
    A, RP = t.allocations, t.resource_providers
    root = RP.alias("root")
    query = (
        select(root.c.uuid)
        .select_from(
            A.join(RP, A.c.resource_provider_id == RP.c.id).join(
                root, RP.c.root_provider_id == root.c.id
            )
        )
        .where(A.c.consumer_id.in_(instances))
        .distinct()
    )
    return set(conn.execute(query).scalars())


def _ignored(conn: Connection, names_or_uuids: list[str]) -> set[str]:
    if not names_or_uuids:
        return set()
    RP = t.resource_providers
    query = select(RP.c.uuid).where(
        or_(RP.c.uuid.in_(names_or_uuids), RP.c.name.in_(names_or_uuids))
    )
    return set(conn.execute(query).scalars())


def read_hints(conn: Connection, spec: RequestSpec, group: ServerGroup | None) -> Hints:
    """The hosts behind the spec's hints (uuids), given its server group."""
    return Hints(
        group=group,
        same_hosts=_hosts_of(conn, spec.same_host) if spec.same_host else None,
        different_hosts=_hosts_of(conn, spec.different_host),
        ignored=_ignored(conn, spec.ignore_hosts),
    )


class SchedulingContext:
    """Per-request data shared by every stage."""

    def __init__(
        self,
        spec: RequestSpec,
        config: SchedulerConfig,
        universe: Universe,
        catalog: HostCatalog,
        class_ids: dict[str, int],
        hints: Hints,
    ) -> None:
        self.spec = spec
        self.config = config
        self.universe = universe
        self.catalog = catalog
        self.class_ids = class_ids
        self.group = hints.group
        self.extra_specs = spec.aggregate_extra_specs
        self.project_id = spec.project_id
        by_uuid = universe.by_uuid
        self.group_hosts: Counter[int] = Counter()
        if self.group is not None:
            pending = set(spec.instance_uuids)
            for uuid, n in self.group.hosts(exclude=pending).items():
                if uuid in by_uuid:
                    self.group_hosts[by_uuid[uuid]] += n
        self.same_hosts = (
            _roots(by_uuid, hints.same_hosts) if hints.same_hosts is not None else None
        )
        self.different_hosts = _roots(by_uuid, hints.different_hosts)
        self.ignored = _roots(by_uuid, hints.ignored)
        # host_fresh: state received before this is too old (as stored: naive UTC).
        self.now = utcnow()
        self.fresh_after = self.now - datetime.timedelta(seconds=config.host_fresh_seconds)
        # This request's earlier instances: what they take and where they went.
        self.consumed: dict[tuple[int, int], int] = {}
        self.picked: Counter[int] = Counter()
        self.remaining = spec.num_instances
        # (class id, amount) per instance, set by the candidates stage.
        self.requested: list[tuple[int, int]] = []

    @property
    def policy(self) -> str | None:
        """The server group's policy, if the request names a group."""
        return self.group.policy if self.group is not None else None

    def take(self, host: HostState) -> None:
        """Account one instance placed on ``host`` (for the following instances)."""
        for key, amount in host.candidate.amounts.items():
            self.consumed[key] = self.consumed.get(key, 0) + amount
        self.picked[host.root] += 1
        if self.group is not None:
            self.group_hosts[host.root] += 1
        self.remaining -= 1

    def give_back(self, host: HostState) -> None:
        """Undo :meth:`take` (an instance moved to another host)."""
        for key, amount in host.candidate.amounts.items():
            self.consumed[key] -= amount
        self.picked[host.root] -= 1
        if self.group is not None:
            self.group_hosts[host.root] -= 1
        self.remaining += 1


def _roots(by_uuid: dict[str, int], uuids: Iterable[str]) -> set[int]:
    return {by_uuid[u] for u in uuids if u in by_uuid}
