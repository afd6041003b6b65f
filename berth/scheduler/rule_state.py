"""What the claim's recheck judges, read in the claim transaction: two queries at most.

1. *providers*: every provider of the trees holding the providers named,
   with its generation and root, its ``operator`` namespace (``disabled``,
   zone: a left join on ``scheduler_host_state``) and, when asked, its
   aggregates and their metadata (left joins on ``scheduler_aggregates``);
2. *memberships*, only when asked: the named traits of some providers, and
   the roots of the hosts holding allocations of some instances.

Query 1 reads the generations in the same statement as the attributes and
aggregates, and before query 2: :mod:`berth.scheduler.recheck` says why that
order matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Executable, literal, literal_column, select, union_all

from berth.db.lists import one_of
from berth.db.tables import AGG, ALLOC, HOST_STATE, RP, RP_AGG, RP_TRAIT, SCHED_AGG, TRAIT

# The catalog's own fold of aggregate metadata (zone, tenants, values), so a
# host's aggregates are judged exactly as the selection judged them.
from berth.scheduler.hoststate import AggregateView
from berth.scheduler.hoststate import _view as aggregate_view
from berth.scheduler.namespaces import OPERATOR
from berth.scheduler.state_store import judged


@dataclass
class ProviderNow:
    """One provider as the claim transaction reads it."""

    id: int
    uuid: str
    generation: int
    root_id: int
    disabled: bool
    zone: str | None
    aggregates: dict[str, Mapping[str, str]] = field(default_factory=dict)  # uuid -> metadata
    traits: set[str] = field(default_factory=set)  # only those some rule asks about


@dataclass
class HostNow:
    """What the checks of one claim look at, as the claim transaction read it."""

    root: ProviderNow
    allocated: list[ProviderNow]
    view: AggregateView  # the root's aggregates, as the host catalog folds them
    hosts_of: Mapping[str, set[int]]  # instance uuid -> root ids of the hosts holding it

    def holds(self, instances: frozenset[str] | None) -> bool:
        """Whether the host holds one of ``instances``."""
        return any(self.root.id in self.hosts_of.get(i, ()) for i in instances or ())


@dataclass(frozen=True)
class Wanted:
    """What to read: only what some rule of the batch relies on."""

    providers: frozenset[str]  # uuids; their whole trees are read
    aggregates: bool = False
    traits: frozenset[str] = frozenset()
    trait_providers: frozenset[str] = frozenset()  # uuids whose traits are read
    instances: frozenset[str] = frozenset()  # whose hosts are read


@dataclass
class RuleState:
    """What the transaction read for the batch's claims."""

    by_uuid: dict[str, ProviderNow] = field(default_factory=dict)
    trees: dict[int, list[ProviderNow]] = field(default_factory=dict)  # root id -> providers
    hosts_of: dict[str, set[int]] = field(default_factory=dict)

    def host(self, host_uuid: str, allocation: Iterable[str]) -> HostNow | None:
        """A claim's host and allocated providers as read (None: its root provider is gone)."""
        root = self.by_uuid.get(host_uuid)
        if root is None:
            return None
        allocated = [self.by_uuid[p] for p in allocation if p in self.by_uuid]
        view = aggregate_view([dict(m) for m in root.aggregates.values()])
        return HostNow(root, allocated, view, self.hosts_of)


def read(conn: Connection, wanted: Wanted) -> RuleState:
    """Query 1 (providers, attributes, aggregates), then query 2 if traits or hosts are wanted."""
    state = RuleState()
    params = {"uuids": sorted(wanted.providers)}
    for row in conn.execute(_PROVIDERS[wanted.aggregates], params):
        p = state.by_uuid.get(row.uuid)
        if p is None:
            disabled, zone = judged(orjson.loads(row.operator) if row.operator else {})
            p = state.by_uuid[row.uuid] = ProviderNow(
                row.id, row.uuid, row.generation, row.root_provider_id, disabled, zone
            )
            state.trees.setdefault(p.root_id, []).append(p)
        if wanted.aggregates and row.aggregate is not None:
            p.aggregates[row.aggregate] = orjson.loads(row.agg_metadata or "{}")
    if wanted.traits or wanted.instances:
        _read_memberships(conn, wanted, state)
    return state


def _read_memberships(conn: Connection, wanted: Wanted, state: RuleState) -> None:
    """Query 2: the wanted traits of the wanted providers, the wanted instances' hosts."""
    ids = [state.by_uuid[p].id for p in sorted(wanted.trait_providers) if p in state.by_uuid]
    by_id = {p.id: p for p in state.by_uuid.values()}
    params = {"ids": ids, "traits": sorted(wanted.traits), "instances": sorted(wanted.instances)}
    for row in conn.execute(_MEMBERSHIPS[bool(wanted.traits), bool(wanted.instances)], params):
        if row.kind == "t":
            by_id[row.provider_id].traits.add(row.name)
        else:
            state.hosts_of.setdefault(row.name, set()).add(row.provider_id)


def _providers_query(aggregates: bool) -> Executable:
    """Query 1: every provider of the trees holding ``uuids``, with its operator namespace."""
    involved = RP.alias("involved")
    trees = select(involved.c.root_provider_id).where(one_of(involved.c.uuid, "uuids"))
    columns: list[Any] = [
        RP.c.id,
        RP.c.uuid,
        RP.c.generation,
        RP.c.root_provider_id,
        HOST_STATE.c.body.label("operator"),
    ]
    operator = (HOST_STATE.c.provider_uuid == RP.c.uuid) & (
        HOST_STATE.c.namespace == literal(OPERATOR)
    )
    joined = RP.outerjoin(HOST_STATE, operator)
    if aggregates:
        columns += [AGG.c.uuid.label("aggregate"), SCHED_AGG.c.metadata.label("agg_metadata")]
        joined = (
            joined.outerjoin(RP_AGG, RP_AGG.c.resource_provider_id == RP.c.id)
            .outerjoin(AGG, AGG.c.id == RP_AGG.c.aggregate_id)
            .outerjoin(SCHED_AGG, SCHED_AGG.c.aggregate_uuid == AGG.c.uuid)
        )
    return select(*columns).select_from(joined).where(RP.c.root_provider_id.in_(trees))


def _memberships_query(traits: bool, instances: bool) -> Executable:
    """Query 2: (provider id, trait name) and (root id, hinted instance) rows, by kind."""
    parts = []
    if traits:
        parts.append(
            select(
                RP_TRAIT.c.resource_provider_id.label("provider_id"),
                TRAIT.c.name.label("name"),
                literal_column("'t'").label("kind"),
            )
            .select_from(RP_TRAIT.join(TRAIT, TRAIT.c.id == RP_TRAIT.c.trait_id))
            .where(
                one_of(RP_TRAIT.c.resource_provider_id, "ids"),
                one_of(TRAIT.c.name, "traits"),
            )
        )
    if instances:
        parts.append(
            select(
                RP.c.root_provider_id.label("provider_id"),
                ALLOC.c.consumer_id.label("name"),
                literal_column("'i'").label("kind"),
            )
            .select_from(ALLOC.join(RP, RP.c.id == ALLOC.c.resource_provider_id))
            .where(one_of(ALLOC.c.consumer_id, "instances"))
        )
    return parts[0] if len(parts) == 1 else union_all(*parts)


# Built once: a statement object reused is not analysed again on every call.
_PROVIDERS = {aggregates: _providers_query(aggregates) for aggregates in (False, True)}
_MEMBERSHIPS = {
    (traits, instances): _memberships_query(traits, instances)
    for traits in (False, True)
    for instances in (False, True)
    if traits or instances
}
