"""Small in-memory worlds for unit tests of filters and weighers (no database)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth import settings as settings_mod
from berth.candidates.engine import Candidate
from berth.candidates.model import Inventory, Provider, Universe
from berth.scheduler import config as config_mod
from berth.scheduler.context import Hints, SchedulingContext
from berth.scheduler.groups import ServerGroup
from berth.scheduler.host_attributes import DEFAULT_HOST, HostAttributes
from berth.scheduler.hoststate import AggregateView, HostState
from berth.scheduler.namespaces import StateRules
from berth.scheduler.options import SchedulerConfig
from berth.scheduler.spec import RequestSpec
from berth.scheduler.state_store import NamespaceState

# The rules of the default settings: the built-in schemas, 64 KiB per namespace.
RULES = StateRules(65536)

CLASSES = {"VCPU": 0, "MEMORY_MB": 1, "DISK_GB": 2}


def uuid_of(pid: int) -> str:
    """A readable uuid for provider ``pid``."""
    return f"00000000-0000-0000-0000-{pid:012d}"


def make_provider(pid: int, used: Mapping[str, int] | None = None, **totals: int) -> Provider:
    """A root provider with inventories ``totals`` (ratio 1) and usage ``used``."""
    totals = totals or {"VCPU": 16, "MEMORY_MB": 32768, "DISK_GB": 500}
    inventories = {
        CLASSES[rc]: Inventory(total, 0, 1, total, 1, 1.0, (used or {}).get(rc, 0))
        for rc, total in totals.items()
    }
    return Provider(pid, uuid_of(pid), None, pid, inventories)


@dataclass
class FakeCatalog:
    """Stands in for HostCatalog: attributes and aggregate views by host uuid."""

    attrs: dict[str, HostAttributes] = field(default_factory=dict)
    instances: dict[int, int] = field(default_factory=dict)

    def attributes(self, uuid: str) -> HostAttributes:
        return self.attrs.get(uuid, DEFAULT_HOST)


def attrs(
    received_at: datetime.datetime | None = None, **namespaces: Mapping[str, Any]
) -> HostAttributes:
    """A host's attributes from its namespaces' objects (received now unless told)."""
    when = received_at or datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    return HostAttributes.of({ns: NamespaceState(1, when, s) for ns, s in namespaces.items()})


def config(**overrides: Any) -> SchedulerConfig:
    """Parsed scheduler settings with ``overrides`` (setting names without the prefix)."""
    settings = settings_mod.load(environ={}, **{f"scheduler_{k}": v for k, v in overrides.items()})
    return config_mod.from_settings(settings)


def world(*providers: Provider) -> Universe:
    """A universe over ``providers``."""
    return Universe.build(None, providers)


def host(
    u: Universe,
    pid: int,
    attrs: HostAttributes = DEFAULT_HOST,
    view: AggregateView | None = None,
    **amounts: int,
) -> HostState:
    """The host state of ``pid`` asking ``amounts`` (default VCPU=1)."""
    amounts = amounts or {"VCPU": 1}
    candidate = Candidate(
        {(pid, CLASSES[rc]): n for rc, n in amounts.items()}, {"": frozenset({pid})}
    )
    return HostState(
        u.providers[pid], [u.providers[pid]], candidate, attrs, view or AggregateView()
    )


def context(
    u: Universe,
    spec: RequestSpec | None = None,
    hints: Hints | None = None,
    catalog: FakeCatalog | None = None,
    **config_overrides: Any,
) -> SchedulingContext:
    """A request context over ``u`` (spec default: VCPU=1)."""
    spec = spec or RequestSpec(resources={"VCPU": 1})
    ctx = SchedulingContext(
        spec,
        config(**config_overrides),
        u,
        catalog or FakeCatalog(),  # type: ignore[arg-type]
        CLASSES,
        hints or Hints(),
    )
    ctx.requested = [(CLASSES[rc], n) for rc, n in spec.resources.items()]
    return ctx


def group(
    policy: str, members: dict[str, str | None] | None = None, limit: int | None = None
) -> ServerGroup:
    """A stored-looking server group."""
    return ServerGroup(1, uuid_of(999), None, None, None, policy, limit, 0, dict(members or {}))
