"""The claim's recheck: every rule a selection relied on, judged again where the claim commits.

A worker selects from its own view: the candidates index (traits and
aggregates, refreshed every ``scheduler_index_refresh_ms``), the host
catalog (berth's host state, every ``scheduler_refresh_ms``) and the
hosts of the hinted instances (read when the request arrived).  The claim
transaction judges capacity, consumer novelty and the server-group rule
anew; the checks here judge the rest in that same transaction (a
:data:`~berth.placement.write.batch.RuleCheck`), so that a rule changed
within the view's age costs a refused claim and the next alternate, never
a wrong placement::

    check                  refuses the host when                      selection's stage
    host_enabled           its root provider is disabled              filter host_enabled
    availability_zone      its zone (own, else its aggregates', else  filter availability_zone
                           the default) is not the one asked for
    tenant_isolation       an aggregate of its root is isolated to    filter tenant_isolation
                           other projects
    aggregate_extra_specs  its aggregates' metadata lacks a value     filter aggregate_extra_specs
    required_traits        no provider of the allocation has a        candidates
                           required trait
    forbidden_traits       a provider of the allocation has a         candidates
                           forbidden one
    member_of              a provider of the allocation is outside    candidates
                           an aggregate set (one of the host's tree
                           passes when the root is inside)
    same_host              it holds none of the same_host instances   filter same_host
    different_host         it holds a different_host instance         filter different_host

A check gives the :class:`~berth.scheduler.explain.Reason` its stage gives
at selection; the refusal is final for that host (like a full one) and
counted in ``berth_scheduler_rejections_total{stage="claim"}``.  A claim
carries the rules its selection applied (:class:`Rules`: the request's,
under the enabled filters), and only those are checked.

Cost, per transaction (a group-commit batch), never per claim, and only
for the rules some claim of the batch relies on
(:mod:`berth.scheduler.rule_state` reads it):

1. the providers of every tree the claims touch: generation, root, the
   disabled flag and zone (the ``operator`` namespace, joined from
   ``scheduler_host_state``) and, when a rule needs them, aggregates and
   their metadata (from ``scheduler_aggregates``); one query;
2. only for traits or hints: the asked traits of the allocated providers
   and the hosts of the hinted instances; one query.

Races.  Under READ COMMITTED each statement reads its own snapshot, so what
a check read may change before the claim commits.  The guard is the
generation swap the claim commits with: a claim swaps the generation of
every provider whose state its rules read (the providers it allocates
from, as always; its host's root provider; for ``different_host`` every
provider of the host's tree), each at a generation read no later than that
state (the capacity read's, a statement before this check, else query 1's,
the same statement as the attributes and aggregates, before query 2).
Every writer of what a rule reads moves the generation of the providers it
changes, in its own transaction: Placement's trait writes, aggregate writes
(microversion 1.19 and later) and allocation writes (an instance arriving
on a host); berth's writes of a host's ``operator`` namespace that change
``disabled`` or the zone (whatever the route: scheduler 1.0's host ``PUT``,
or ``PUT``, ``PATCH`` and ``DELETE`` of the namespace, in
:mod:`berth.scheduler.state_store`), and aggregate metadata writes (every
member of the aggregate), with
:func:`berth.placement.write.generations.advance`.  Other namespaces
(metrics) move nothing: no check reads them.  A change W and a claim
C meeting on a provider P: if W committed before C read P's state, C sees
it; if W committed after that read but before C's swap, C's swap finds
another generation and C runs again, seeing W; if W moves P's generation
after C's swap, W waits for C's row lock (on multi-writer Galera both change
P's row and certification lets only one through), so C commits first and
was right when it did.  No row is read ``FOR UPDATE``.

Not closed within the claim transaction's own milliseconds (seen if
committed before the claim's read): Placement aggregate writes before
microversion 1.19, which leave the generation alone by contract, and a
``same_host`` instance leaving the host, as freeing allocations moves no
generation either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sqlalchemy import Connection

from berth.placement.write.batch import RuleCheck, RuleVerdict
from berth.scheduler import filters, rule_state
from berth.scheduler.candidates import NOT_IN_AGGREGATES
from berth.scheduler.explain import Reason
from berth.scheduler.options import SchedulerConfig
from berth.scheduler.rule_state import HostNow, ProviderNow, RuleState, Wanted
from berth.scheduler.spec import RequestSpec


@dataclass(frozen=True)
class Rules:
    """What a selection relied on beyond capacity: the request's rules as its stages apply them."""

    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
    member_of: tuple[frozenset[str], ...] = ()  # aggregate uuids, one of each set
    enabled_only: bool = False  # host_enabled
    zone: str | None = None  # availability_zone: the zone asked for
    default_zone: str = ""
    isolation: bool = False  # tenant_isolation
    project_id: str | None = None
    extra_specs: tuple[tuple[str, str], ...] = ()  # aggregate_extra_specs
    same_host: frozenset[str] | None = None  # instance uuids; None: no same_host hint
    different_host: frozenset[str] = frozenset()

    @classmethod
    def of(cls, spec: RequestSpec, config: SchedulerConfig) -> Rules:
        """The rules of ``spec`` that the enabled filters and the candidates stage apply."""
        on = set(config.filters)
        return cls(
            required_traits=frozenset(spec.required_traits),
            forbidden_traits=frozenset(spec.forbidden_traits),
            member_of=tuple(frozenset(any_of) for any_of in spec.member_of),
            enabled_only=filters.HostEnabled.name in on,
            zone=spec.availability_zone if filters.AvailabilityZone.name in on else None,
            default_zone=config.default_availability_zone,
            isolation=filters.TenantIsolation.name in on,
            project_id=spec.project_id,
            extra_specs=(
                tuple(spec.aggregate_extra_specs) if filters.AggregateExtraSpecs.name in on else ()
            ),
            same_host=(
                frozenset(spec.same_host)
                if spec.same_host and filters.SameHost.name in on
                else None
            ),
            different_host=(
                frozenset(spec.different_host) if filters.DifferentHost.name in on else frozenset()
            ),
        )

    @property
    def any(self) -> bool:
        """Whether the claim relies on any rule at all."""
        return bool(
            self.traits
            or self.aggregates
            or self.enabled_only
            or self.instances
            or self.same_host is not None
        )

    @property
    def aggregates(self) -> bool:
        """Whether a rule reads the aggregates (and their metadata) of the host."""
        return bool(self.member_of or self.zone is not None or self.isolation or self.extra_specs)

    @property
    def traits(self) -> frozenset[str]:
        """Every trait a rule asks about."""
        return self.required_traits | self.forbidden_traits

    @property
    def instances(self) -> frozenset[str]:
        """Every hinted instance."""
        return (self.same_host or frozenset()) | self.different_host


NO_RULES = Rules()


class Placed(Protocol):
    """A claim as the recheck reads it (:class:`berth.scheduler.claims.Claim`)."""

    @property
    def host_uuid(self) -> str:
        """The host's (root provider's) uuid."""

    @property
    def allocation(self) -> Mapping[str, Mapping[str, int]]:
        """Provider uuid -> class -> amount."""

    @property
    def rules(self) -> Rules:
        """What the selection relied on."""


class Check:
    """Base class: one rule of the selection, judged on what the claim transaction read."""

    name: ClassVar[str] = ""

    def applies(self, rules: Rules) -> bool:
        """Whether the selection applied this rule."""
        raise NotImplementedError

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        """None when the rule still holds, else the reason it does not."""
        raise NotImplementedError


class HostEnabled(Check):
    """Not disabled since the selection."""

    name = filters.HostEnabled.name

    def applies(self, rules: Rules) -> bool:
        return rules.enabled_only

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        return filters.DISABLED if host.root.disabled else None


class AvailabilityZone(Check):
    """Still in the zone asked for."""

    name = filters.AvailabilityZone.name

    def applies(self, rules: Rules) -> bool:
        return rules.zone is not None

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        zone = host.root.zone or host.view.availability_zone or rules.default_zone
        if zone == rules.zone:
            return None
        return Reason("other_zone", f"not in availability zone {rules.zone}")


class TenantIsolation(Check):
    """Not isolated to other projects since."""

    name = filters.TenantIsolation.name

    def applies(self, rules: Rules) -> bool:
        return rules.isolation

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        tenants = host.view.tenants
        return filters.ISOLATED if tenants and rules.project_id not in tenants else None


class AggregateExtraSpecs(Check):
    """The aggregates' metadata still has every value the flavor asks for."""

    name = filters.AggregateExtraSpecs.name

    def applies(self, rules: Rules) -> bool:
        return bool(rules.extra_specs)

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        metadata = host.view.metadata
        for key, wanted in rules.extra_specs:
            if wanted not in metadata.get(key, ()):
                return Reason("aggregate_metadata", f"aggregate metadata {key} is not {wanted}")
        return None


class RequiredTraits(Check):
    """Some provider of the allocation still has each required trait (as the candidates do)."""

    name = "required_traits"

    def applies(self, rules: Rules) -> bool:
        return bool(rules.required_traits)

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        have: set[str] = set().union(*(p.traits for p in host.allocated))
        missing = sorted(rules.required_traits - have)
        return Reason("lacked_trait", f"lacked {missing[0]}") if missing else None


class ForbiddenTraits(Check):
    """No provider of the allocation has gained a forbidden trait."""

    name = "forbidden_traits"

    def applies(self, rules: Rules) -> bool:
        return bool(rules.forbidden_traits)

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        for p in host.allocated:
            had = sorted(p.traits & rules.forbidden_traits)
            if had:
                return Reason("forbidden_trait", f"had forbidden {had[0]}")
        return None


class MemberOf(Check):
    """Every provider of the allocation is still in one aggregate of each set.

    As the candidates engine judges it: a provider of the host's tree passes
    when the root is in them all; a sharing provider must be itself.
    """

    name = "member_of"

    def applies(self, rules: Rules) -> bool:
        return bool(rules.member_of)

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        root_in = _in_all(host.root, rules.member_of)
        for p in host.allocated:
            in_tree = p.root_id == host.root.id
            if not (in_tree and root_in) and not _in_all(p, rules.member_of):
                return NOT_IN_AGGREGATES
        return None


def _in_all(p: ProviderNow, member_of: tuple[frozenset[str], ...]) -> bool:
    return all(not any_of.isdisjoint(p.aggregates) for any_of in member_of)


class SameHost(Check):
    """The host still holds a same_host instance."""

    name = filters.SameHost.name

    def applies(self, rules: Rules) -> bool:
        return rules.same_host is not None

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        return None if host.holds(rules.same_host) else filters.NOT_SAME_HOST


class DifferentHost(Check):
    """No different_host instance has arrived on the host."""

    name = filters.DifferentHost.name

    def applies(self, rules: Rules) -> bool:
        return bool(rules.different_host)

    def feasible(self, host: HostNow, rules: Rules) -> Reason | None:
        return filters.DIFFERENT_HOST if host.holds(rules.different_host) else None


# In the order of the default filters, then the candidates stage's rules.
CHECKS: tuple[Check, ...] = (
    HostEnabled(),
    AvailabilityZone(),
    TenantIsolation(),
    AggregateExtraSpecs(),
    SameHost(),
    DifferentHost(),
    RequiredTraits(),
    ForbiddenTraits(),
    MemberOf(),
)


def refusal(host: HostNow, rules: Rules) -> Reason | None:
    """The first rule ``host`` breaks (None: all hold)."""
    for check in CHECKS:
        if check.applies(rules):
            reason = check.feasible(host, rules)
            if reason is not None:
                return reason
    return None


def for_batch(requests: Sequence[Sequence[Placed]]) -> RuleCheck | None:
    """The rule check of a transaction writing ``requests`` (None: no claim relies on a rule)."""
    if not any(c.rules.any for request in requests for c in request):
        return None
    return _Recheck(requests)


class _Recheck:
    """The checks of every claim of one transaction, over two queries at most."""

    def __init__(self, requests: Sequence[Sequence[Placed]]) -> None:
        self.requests = requests

    def __call__(self, conn: Connection) -> list[RuleVerdict]:
        claims = [c for request in self.requests for c in request if c.rules.any]
        state = rule_state.read(conn, _wanted(claims))
        return [_judge(request, state) for request in self.requests]


def _wanted(claims: list[Placed]) -> Wanted:
    """What the rules of ``claims`` read: only what some claim relies on."""
    return Wanted(
        providers=frozenset(
            {c.host_uuid for c in claims} | {p for c in claims for p in c.allocation}
        ),
        aggregates=any(c.rules.aggregates for c in claims),
        traits=frozenset().union(*(c.rules.traits for c in claims)),
        trait_providers=frozenset(p for c in claims if c.rules.traits for p in c.allocation),
        instances=frozenset().union(*(c.rules.instances for c in claims)),
    )


def _judge(request: Sequence[Placed], state: RuleState) -> RuleVerdict:
    """One all-or-nothing request: refused at its first broken rule, else what it read."""
    relied: dict[int, int] = {}
    for claim in request:
        rules = claim.rules
        host = state.host(claim.host_uuid, claim.allocation) if rules.any else None
        if host is None:  # nothing relied on, or the host is gone (capacity refuses it)
            continue
        reason = refusal(host, rules)
        if reason is not None:
            return RuleVerdict(reason.code, f"host {claim.host_uuid}: {reason.text}")
        relied[host.root.id] = host.root.generation
        if rules.different_host:  # an instance arriving anywhere in the tree moves its provider
            relied.update((p.id, p.generation) for p in state.trees[host.root.id])
    return RuleVerdict(relied_on=relied)
