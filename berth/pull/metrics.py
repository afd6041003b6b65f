"""Pull dispatch's Prometheus counters (registered when berth.pull is imported)."""

from __future__ import annotations

from prometheus_client import Counter

CLAIMS = Counter(
    "berth_pull_claims",
    "Pull claims answered, by outcome (claimed, taken, full, group)",
    ["outcome"],
)
SWEPT = Counter(
    "berth_pull_swept",
    "Instances the pull sweepers moved or sent, by step "
    "(failed, requeued, quota_gone, stalled, deletes_finished, published, lost)",
    ["step"],
)
