"""The Python API: :func:`select_destinations` (selection, then claims).

Safe to call from many threads and processes at once: each process builds
its pipeline once (:attr:`Services.scheduler_pipeline
<berth.services.Services.scheduler_pipeline>`), selection reads only memory,
and every claim is one atomic transaction in the database.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from berth.db.engine import Database
from berth.placement.write.retry import atomically
from berth.scheduler import claims, groups
from berth.scheduler.answer import Answer, HostChoice, NoValidHost, Selection
from berth.scheduler.claims import Claim, KnownClasses, Owner
from berth.scheduler.context import Hints, read_hints
from berth.scheduler.explain import REQUESTS, SELECT_SECONDS
from berth.scheduler.groups import ServerGroup
from berth.scheduler.pipeline import (
    Decision,
    Pipeline,
    Placement,
    decide,
    look_again,
    no_valid_host,
)
from berth.scheduler.recheck import Rules
from berth.scheduler.spec import RequestSpec

if TYPE_CHECKING:
    # berth.services builds the pipeline: at run time it imports us, not the reverse.
    from berth.services import Services


def select_destinations(services: Services, spec: RequestSpec) -> Answer:
    """Choose (and unless ``spec.dry_run``, claim) a host for every instance of ``spec``.

    Raises :class:`NoValidHost` (with an explanation) when the request
    cannot be placed, ``InvalidInput`` for unknown names, ``NotFound`` for
    an unknown server group, ``InstanceExists`` when an instance
    already holds allocations.
    """
    started = time.perf_counter()
    outcome = "error"
    try:
        answer = _select(services, spec)
        outcome = "dry_run" if spec.dry_run else ("partial" if answer.failed else "placed")
        return answer
    except NoValidHost:
        outcome = "no_valid_host"
        raise
    finally:
        REQUESTS.labels(outcome).inc()
        SELECT_SECONDS.observe(time.perf_counter() - started)


def _select(services: Services, spec: RequestSpec) -> Answer:
    pipeline = services.scheduler_pipeline
    hints = _hints(services, spec)
    decision = decide(pipeline, spec, hints)
    if _unplaceable(decision, spec) and pipeline.config.index_refresh_seconds > 0:
        # Only this worker's view, which may lag, said so: look again with a fresh one.
        _settle(pipeline, decision, None)
        look_again(pipeline)
        decision = decide(pipeline, spec, hints)
    answer: Answer | None = None
    try:
        if _unplaceable(decision, spec):
            pipeline.reservations.invalidate()  # maybe only this worker's view said so
            raise no_valid_host(decision, spec)
        if spec.dry_run:
            selections = [
                Selection(p.instance_uuid, p.ranked[0], p.ranked[1:]) for p in decision.placements
            ]
            return Answer(
                selections,
                claimed=False,
                failed=decision.unplaced,
                explanation=decision.explanation,
            )
        answer = _claim(pipeline, services.db, spec, decision, hints)
        return answer
    finally:
        _settle(pipeline, decision, answer)


def _unplaceable(decision: Decision, spec: RequestSpec) -> bool:
    return not decision.placements or bool(decision.unplaced and spec.all_or_nothing)


def _settle(pipeline: Pipeline, decision: Decision, answer: Answer | None) -> None:
    """Keep the reservations of first choices claimed, drop the rest; note alternates taken."""
    chosen = {s.instance_uuid: s.chosen for s in answer.selections} if answer else {}
    book = pipeline.reservations
    for placement, reservation in zip(decision.placements, decision.reservations, strict=False):
        host = chosen.get(placement.instance_uuid)
        book.settle(reservation, committed=host is placement.ranked[0])
        if host is not None and host is not placement.ranked[0]:
            book.add(host.amounts)
    if answer is None or answer.refused or answer.lost_races:
        book.invalidate()
        pipeline.catalog.invalidate()  # a host may have been disabled or moved zone


def _hints(services: Services, spec: RequestSpec) -> Hints:
    """Server group (created when the spec defines it) and the hosts behind the hints."""
    if not (spec.server_group or spec.same_host or spec.different_host or spec.ignore_hosts):
        return Hints()
    group = _group(services, spec) if spec.server_group is not None else None
    with services.db.read() as conn:
        return read_hints(conn, spec, group)


def _group(services: Services, spec: RequestSpec) -> ServerGroup:
    """The spec's server group: existing, created (policy given), or an empty stand-in (dry run)."""
    wanted = spec.server_group
    assert wanted is not None
    db = services.db
    with db.read() as conn:
        found = groups.find(conn, wanted.uuid)
    if found is not None or wanted.policy is None:
        # ensure() checks the policy of an existing group, and NotFound without a policy.
        return groups.ensure_found(found, wanted)
    if spec.dry_run:
        # A dry run creates nothing: judge against an empty group.
        return ServerGroup(
            -1,
            wanted.uuid,
            wanted.name,
            spec.project_id,
            spec.user_id,
            wanted.policy,
            wanted.max_server_per_host,
            0,
        )

    def ensure(conn: Connection) -> ServerGroup:
        return groups.ensure(conn, wanted, spec.project_id, spec.user_id)

    return atomically(
        db, ensure, services.settings.scheduler_claim_retries, operation=groups.OPERATION
    )


def _claim(
    pipeline: Pipeline, db: Database, spec: RequestSpec, decision: Decision, hints: Hints
) -> Answer:
    """Claim every placement: all at once when possible, else one by one with alternates."""
    group = hints.group
    owner = Owner(spec.project_id, spec.user_id, group.uuid if group is not None else None)
    claimer = _Claimer(pipeline, db, owner, Rules.of(spec, pipeline.config))
    placements = decision.placements
    answer = Answer([], claimed=True, failed=list(decision.unplaced))
    if len(placements) > 1:
        first = [_as_claim(p.instance_uuid, p.ranked[0], claimer.rules) for p in placements]
        outcome = claimer.claim(first)
        answer.lost_races += outcome.lost_races
        if outcome.ok:
            answer.selections = [_selection(p, p.ranked[0]) for p in placements]
            return answer
        answer.refused += 1
    claimed: list[str] = []
    for placement in placements:
        chosen = _claim_one(claimer, placement, answer)
        if chosen is not None:
            claimed.append(placement.instance_uuid)
            answer.selections.append(_selection(placement, chosen))
            continue
        if spec.all_or_nothing:
            claims.release(db, claimed, owner.group_uuid, pipeline.config.claim_retries)
            raise NoValidHost(
                f"No valid host for instance {placement.instance_uuid}: every one of its "
                f"{len(placement.ranked)} hosts refused the claim (full, a rule changed "
                "since the selection, group rule or lost races); nothing was claimed"
            )
        answer.failed.append(placement.instance_uuid)
    if not answer.selections:
        raise NoValidHost("No valid host: every claim was refused")
    return answer


class _Claimer:
    """Claims of one request: through the group commit, or (server group) on their own."""

    def __init__(self, pipeline: Pipeline, db: Database, owner: Owner, rules: Rules) -> None:
        self.pipeline = pipeline
        self.db = db
        self.owner = owner
        self.known = KnownClasses(pipeline.index.rc_names)
        self.rules = rules  # what the selection relied on, judged again by every claim

    def claim(self, batch: list[Claim]) -> claims.Outcome:
        group_commit = self.pipeline.group_commit
        if group_commit is not None and self.owner.group_uuid is None:
            return claims.claim_combined(group_commit, batch, self.owner, self.known)
        retries = self.pipeline.config.claim_retries
        return claims.claim_batch(self.db, batch, self.owner, self.known, retries)


def _claim_one(claimer: _Claimer, placement: Placement, answer: Answer) -> HostChoice | None:
    """The first host (chosen, then alternates) that accepts the claim."""
    for host in placement.ranked:
        outcome = claimer.claim([_as_claim(placement.instance_uuid, host, claimer.rules)])
        answer.lost_races += outcome.lost_races
        if outcome.ok:
            return host
        answer.refused += 1
    return None


def _as_claim(instance_uuid: str, host: HostChoice, rules: Rules) -> Claim:
    return Claim(instance_uuid, host.host_uuid, host.allocation, rules)


def _selection(placement: Placement, chosen: HostChoice) -> Selection:
    alternates = [h for h in placement.ranked if h is not chosen]
    return Selection(placement.instance_uuid, chosen, alternates)
