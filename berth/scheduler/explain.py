"""Why hosts were turned away: per-stage tallies, a one-line summary, Prometheus counters.

Each stage (the candidates engine, then each filter) records the hosts it
removed with a :class:`Reason`: a constant ``code`` for machines, one of a
fixed set per stage (like the ``ErrReason`` of Kubernetes' scheduler
plugins), and ``text`` for people, which may name what the request asked
("not in availability zone az1").  The Prometheus label is the code, never
the text: a client choosing zone names, traits or hosts cannot create new
series.  The hosts a stage saw are those the previous stage let through, so
only removals are counted on the hot path.  Filters that depend on earlier
instances of the request run once per instance; their tally is the one of
the instance that failed (or of the last instance).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from berth.metrics import LATENCY_BUCKETS

REJECTIONS = PromCounter(
    "berth_scheduler_rejections",
    "Hosts the scheduler turned away, by stage and reason",
    ["stage", "reason"],
)
REQUESTS = PromCounter(
    "berth_scheduler_requests", "select_destinations requests by outcome", ["outcome"]
)
CLAIMS = PromCounter(
    "berth_scheduler_claims",
    "Claim attempts by outcome (claimed, conflict, full, rule, group; "
    "released = claimed then undone)",
    ["outcome"],
)
SELECT_SECONDS = Histogram(
    "berth_scheduler_select_seconds",
    "Time to answer select_destinations (selection and claims)",
    buckets=LATENCY_BUCKETS,
)

CANDIDATES = "candidates"

# Every reason code, by stage (the candidates engine's, then each filter's).
ReasonCode = Literal[
    # candidates
    "no_inventory",
    "lacked_trait",
    "forbidden_trait",
    "not_in_aggregates",
    "lacked_capacity",
    "no_candidate",
    # filters
    "disabled",
    "other_zone",
    "isolated",
    "aggregate_metadata",
    "anti_affinity",
    "affinity_elsewhere",
    "affinity_no_room",
    "not_same_host",
    "different_host",
    "ignored",
    "metric_missing",
    "metric_limit",
    "state_missing",
    "state_stale",
    "full_after_claims",
]
REASON_CODES: frozenset[str] = frozenset(get_args(ReasonCode))
OTHER = "other"  # the label of a code not in REASON_CODES (a plugin filter's own)


class Reason(NamedTuple):
    """Why a stage turned a host away: a constant code (the metric label), words for people."""

    code: ReasonCode
    text: str


@dataclass
class Explanation:
    """Stage-by-stage removals over the hosts a request looked at."""

    stages: list[str]
    examined: int = 0  # hosts handed to the first stage
    complete: bool = True  # False: a bounded scan stopped before the last host
    removed: dict[str, Counter[Reason]] = field(default_factory=dict)
    per_instance: dict[str, Counter[Reason]] = field(default_factory=dict)
    found: int = 0

    def reject(self, stage: str, reason: Reason) -> None:
        """One host removed by ``stage``."""
        counts = self.removed.get(stage)
        if counts is None:
            counts = self.removed[stage] = Counter()
        counts[reason] += 1

    def merge_instance(self, tally: dict[str, Counter[Reason]]) -> None:
        """Keep one instance's per-instance tally (the latest), and publish it."""
        self.per_instance = tally
        _publish(tally)

    def _tally(self, stage: str) -> Counter[str]:
        """The stage's removals by text (what people read)."""
        by_reason = self.removed.get(stage) or self.per_instance.get(stage) or Counter()
        by_text: Counter[str] = Counter()
        for reason, n in by_reason.items():
            by_text[reason.text] += n
        return by_text

    def report(self) -> list[dict[str, Any]]:
        """Per stage: hosts in, hosts out, and removals by reason (largest first)."""
        out = []
        remaining = self.examined
        for stage in self.stages:
            removed = self._tally(stage)
            gone = sum(removed.values())
            out.append(
                {
                    "stage": stage,
                    "hosts_in": remaining,
                    "hosts_out": remaining - gone,
                    "removed": dict(removed.most_common()),
                }
            )
            remaining -= gone
        return out

    def summary(self) -> str:
        """``0 of 800 hosts: 612 lacked VCPU, 188 lacked CUSTOM_GPU``."""
        reasons: Counter[str] = Counter()
        for stage in self.stages:
            reasons.update(self._tally(stage))
        head = f"{self.found} of {self.examined} hosts"
        if not self.complete:
            head += " examined (the scan stopped early)"
        if not reasons:
            return head
        return head + ": " + ", ".join(f"{n} {why}" for why, n in reasons.most_common())

    def as_body(self) -> dict[str, Any]:
        """The JSON shape of the ``explanation`` member."""
        return {
            "summary": self.summary(),
            "hosts_examined": self.examined,
            "hosts_found": self.found,
            "scan_complete": self.complete,
            "stages": self.report(),
        }

    def publish(self) -> None:
        """Add the request-wide removals to the Prometheus counters."""
        _publish(self.removed)


def _publish(tally: dict[str, Counter[Reason]]) -> None:
    """Count removals by stage and reason code (a bounded set of label values)."""
    by_code: Counter[tuple[str, str]] = Counter()
    for stage, counts in tally.items():
        for reason, n in counts.items():
            by_code[stage, reason.code if reason.code in REASON_CODES else OTHER] += n
    for (stage, code), n in by_code.items():
        REJECTIONS.labels(stage, code).inc(n)
