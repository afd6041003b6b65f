"""select_destinations: candidates -> filters -> weighers -> top-k choice -> claim.

:func:`build` wires the stages from the settings, once per process (the
pipeline is :attr:`berth.services.Services.scheduler_pipeline`);
:meth:`Scheduler.decide` runs them for one request (a comment per stage);
:meth:`Scheduler.select` adds the claims.  Selection runs under this
worker's candidates-index lock, from memory; claims run after it, in the
database, where capacity and group rules are checked again atomically.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.candidates.index import MemoryIndex
from berth.db.engine import Database
from berth.scheduler import config as config_mod
from berth.scheduler import filters as filters_mod
from berth.scheduler import weighers as weighers_mod
from berth.scheduler.answer import HostChoice, NoValidHost
from berth.scheduler.candidates import CandidateSource
from berth.scheduler.context import Hints, SchedulingContext
from berth.scheduler.explain import CANDIDATES, Explanation, Reason
from berth.scheduler.filters import Filter
from berth.scheduler.group_commit import GroupCommit
from berth.scheduler.hoststate import HostCatalog, HostState
from berth.scheduler.options import SchedulerConfig
from berth.scheduler.partition import Partitioner
from berth.scheduler.reservations import Reservation, Reservations
from berth.scheduler.scan import HostScan, MissMemo, phases
from berth.scheduler.spec import RequestSpec
from berth.scheduler.weighers import Weigher
from berth.settings import Settings
from berth.sync.protocol import StateSync


@dataclass
class Pipeline:
    """The stages of one process, in order."""

    config: SchedulerConfig
    filters: list[Filter]
    weighers: list[tuple[Weigher, float]]
    partitioner: Partitioner
    catalog: HostCatalog
    index: MemoryIndex
    # The group commit of this process's claims (None: one transaction per claim).
    group_commit: GroupCommit | None = None
    reservations: Reservations = field(default_factory=Reservations)
    misses: MissMemo = field(default_factory=MissMemo)


def build(
    settings: Settings, db: Database, index: MemoryIndex, sync: StateSync | None = None
) -> Pipeline:
    """Wire the stages from the settings, over ``db``, this process's ``index`` and its
    host-state ``sync`` backend (None: poll the change logs)."""
    config = config_mod.from_settings(settings)
    check_ms = settings.host_state_sync_check_ms or settings.scheduler_refresh_ms
    return Pipeline(
        config=config,
        # Candidates: the allocation-candidates engine over this worker's index.
        index=index,
        # Filters, in the order of scheduler_filters (request_fit always last).
        filters=filters_mod.build(config.filters),
        # Weighers with their multipliers (pack-first: negative resource multipliers).
        weighers=weighers_mod.build(config.weighers),
        # Which hosts this worker scans first.
        partitioner=Partitioner(config, db),
        # berth's own host state (every namespace, aggregate metadata), pushed by the sync
        # backend and read from the change logs.
        catalog=HostCatalog(db, sync, check_ms / 1000),
        # Claims: concurrent requests of this process share transactions.
        group_commit=(
            GroupCommit(db, config.claim_retries, config.claim_batch)
            if config.claim_batch
            else None
        ),
    )


@dataclass
class Placement:
    """One instance and its hosts, best first (the chosen one, then alternates)."""

    instance_uuid: str
    ranked: list[HostChoice]


@dataclass
class Decision:
    """The outcome of selection, before any claim."""

    placements: list[Placement] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    explanation: Explanation | None = None
    # The chosen hosts' amounts, counted as used until the claims settle them.
    reservations: list[Reservation] = field(default_factory=list)


class Selector:
    """Selection for one request, under the index lock."""

    def __init__(self, pipeline: Pipeline, spec: RequestSpec, hints: Hints) -> None:
        self.p = pipeline
        self.spec = spec
        self.hints = hints
        self.alternates = pipeline.config.alternates if spec.alternates is None else spec.alternates
        self.scores = weighers_mod.Scores()

    def decide(self) -> Decision:
        """Choose hosts for every instance of the request."""
        p, spec = self.p, self.spec
        # 1. Candidates: names resolved once; hosts are asked for one at a time.
        source = CandidateSource(p.index, spec)
        # 2. The request context: computed once, shared by every stage.
        ctx = self.context(source)
        static = [f for f in p.filters if not f.per_instance and f.applies(ctx)]
        dynamic = [f for f in p.filters if f.per_instance and f.applies(ctx)]
        explanation = Explanation([CANDIDATES, *(f.name for f in static + dynamic)])
        # 3. Request-wide filters, streamed over the scan order (own partition first,
        #    after the hosts already known to have no candidate).
        misses = p.misses.of(p.index.version, source.shape)
        order = phases(source.anchors, p.partitioner, ctx, p.config.scan_random_start, misses)
        limit = self._scan_limit()
        scan = HostScan(source, ctx, static, explanation, order, limit, misses.reasons)
        decision = Decision()
        for instance in spec.instance_uuids:
            # 4. Per-instance filters, weighers, and a choice among the top hosts.
            ranked = self.rank(scan, dynamic, ctx, explanation)
            if not ranked:
                decision.unplaced.append(instance)
                if spec.all_or_nothing:
                    break
                continue
            ctx.take(ranked[0][0])
            self.scores.forget(ranked[0][0].root)
            choices = [self.choice(host, weight, source) for host, weight in ranked]
            decision.placements.append(Placement(instance, choices))
        explanation.publish()
        if decision.unplaced or spec.dry_run or spec.explain:
            decision.explanation = self.explain(ctx if decision.unplaced else self.context(source))
        return decision

    def context(self, source: CandidateSource) -> SchedulingContext:
        """A fresh request context (no instance placed yet)."""
        ctx = SchedulingContext(
            self.spec,
            self.p.config,
            source.universe,
            self.p.catalog,
            self.p.index.rc_ids,
            self.hints,
        )
        ctx.requested = source.requested
        ctx.consumed = self.p.reservations.snapshot()
        return ctx

    def _scan_limit(self) -> int:
        limit = self.p.config.scan_limit
        if not limit:
            return 0
        # Enough hosts for every instance (anti-affinity), its alternates and the top-k.
        return max(
            limit, self.spec.num_instances + self.alternates + self.p.config.host_subset_size
        )

    def rank(
        self, scan: HostScan, dynamic: list[Filter], ctx: SchedulingContext, e: Explanation
    ) -> list[tuple[HostState, float]]:
        """The chosen host then the alternates, with their weights ([]: none fits)."""
        if not scan.hosts:
            scan.more()
        while True:
            tally: dict[str, Counter[Reason]] = {}
            fit = [h for h in scan.hosts if _passes(h, dynamic, ctx, tally)]
            if fit or not scan.more():
                break
        e.merge_instance(tally)
        if not fit:
            return []
        weights = weighers_mod.weigh(fit, self.p.weighers, ctx, self.scores)
        wanted = self.p.config.host_subset_size + self.alternates
        best = heapq.nlargest(wanted, range(len(fit)), key=weights.__getitem__)
        first = random.choice(best[: self.p.config.host_subset_size])
        order = [first, *[i for i in best if i != first][: self.alternates]]
        return [(fit[i], weights[i]) for i in order]

    def choice(self, host: HostState, weight: float, source: CandidateSource) -> HostChoice:
        """A host as the answer names it (read under the lock: the index may move on)."""
        names = self.p.index.rc_names
        rcs = {rc for _, rc in host.candidate.amounts}
        if not rcs <= names.keys():
            names = self.p.index.class_names(rcs)
        allocation = host.allocation(source.universe, names)
        amounts = dict(host.candidate.amounts)
        return HostChoice(host.uuid, allocation, weight, amounts, host.provider.name)

    def explain(self, ctx: SchedulingContext) -> Explanation:
        """Every host of the cloud through every stage, for the answer (not the hot path)."""
        source = CandidateSource(self.p.index, self.spec)
        static = [f for f in self.p.filters if not f.per_instance and f.applies(ctx)]
        dynamic = [f for f in self.p.filters if f.per_instance and f.applies(ctx)]
        explanation = Explanation([CANDIDATES, *(f.name for f in static + dynamic)])
        roots = iter(list(source.universe.roots))
        scan = HostScan(source, ctx, static, explanation, [roots], limit=0)
        scan.more()
        tally: dict[str, Counter[Reason]] = {}
        explanation.found = sum(_passes(h, dynamic, ctx, tally) for h in scan.hosts)
        explanation.per_instance = tally
        return explanation


def _passes(
    host: HostState,
    dynamic: list[Filter],
    ctx: SchedulingContext,
    tally: dict[str, Counter[Reason]],
) -> bool:
    for f in dynamic:
        reason = f.feasible(host, ctx)
        if reason is not None:
            tally.setdefault(f.name, Counter())[reason] += 1
            return False
    return True


def decide(pipeline: Pipeline, spec: RequestSpec, hints: Hints) -> Decision:
    """Select hosts for ``spec`` from this worker's (refreshed) state."""
    config = pipeline.config
    pipeline.catalog.refresh(config.refresh_seconds, _counts_instances(pipeline))
    pipeline.partitioner.refresh()
    # Outside the index lock: the refresh reads the database while other threads select,
    # and takes the lock only to put what it read in place.
    pipeline.reservations.refresh(config.index_refresh_seconds, _refresher(pipeline, config))
    with pipeline.index.lock:
        decision = Selector(pipeline, spec, hints).decide()
        if not spec.dry_run:
            chosen = (p.ranked[0].amounts for p in decision.placements)
            decision.reservations = pipeline.reservations.reserve(chosen)
        return decision


def look_again(pipeline: Pipeline) -> None:
    """Bring this worker's view up to date now, waiting for it (a request found no host
    in a view that may lag: a host added or capacity freed since it was read)."""
    pipeline.catalog.refresh(0.0, _counts_instances(pipeline))
    index = pipeline.index

    def fresh() -> bool:
        index.refresh()
        return True

    pipeline.reservations.refresh(0.0, fresh)


def _refresher(pipeline: Pipeline, config: SchedulerConfig) -> Callable[[], bool]:
    """The index refresh a request runs: every time (waiting for a fresh one) when the
    view may not lag (``scheduler_index_refresh_ms=0``), else only if none is under way."""
    index = pipeline.index
    if config.index_refresh_seconds <= 0:

        def fresh() -> bool:
            index.refresh()
            return True

        return fresh
    return index.refresh_if_idle


def _counts_instances(pipeline: Pipeline) -> bool:
    return any(w.name == "instances" for w, _ in pipeline.weighers)


def no_valid_host(decision: Decision, spec: RequestSpec) -> NoValidHost:
    """The error for a request some instance of which found no host."""
    e = decision.explanation
    summary = e.summary() if e is not None else "no host"
    n = spec.num_instances
    if n == 1:
        what = "the instance"
    elif spec.all_or_nothing:
        what = f"instance {spec.instance_uuids.index(decision.unplaced[0]) + 1} of {n}"
    else:
        what = f"any of the {n} instances"
    return NoValidHost(f"No valid host for {what}: {summary}", e)
