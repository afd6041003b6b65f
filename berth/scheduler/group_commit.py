"""Group commit: the concurrent claims of one process share transactions.

A commit waits for the database to make it durable (an fsync), and on a
small machine the number of commits per second, not the work inside them,
bounds the claims per second.  Threads of one scheduler process (HTTP
request threads, or a benchmark's) therefore hand their claims to a
:class:`GroupCommit`: the first thread to arrive becomes the *leader*
and writes every claim queued by then in one transaction
(:func:`berth.placement.write.batch.write`); the others wait.  When the
leader's own claim is settled it passes the lead to the first thread still
waiting, whose claim heads the queue, so no thread serves others for long.

Each transaction also judges again the rules the batch's claims relied on
(:mod:`berth.scheduler.recheck`), in at most two more queries for the whole
batch.  A claim that lost a provider's compare-and-swap to another writer
goes back in the queue and is judged again in the next transaction (which
reads the new usage), up to ``retries`` times.  An error the write engine
would run again (:func:`berth.placement.write.retry.retryable`: a unique-key
race, a deadlock, a Galera certification failure) does the same for the
whole batch.  Any other error is raised in every thread of the batch; one that
found the database unavailable (:func:`berth.db.engine.unavailable`) also in the
threads queued meanwhile, none of whose claims was sent: each would otherwise
wait out one more attempt, and the last of them several.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import Histogram
from sqlalchemy.exc import IntegrityError

from berth.db.engine import CommitUnknown, Database, unavailable
from berth.placement.class_ids import ResourceClassCache
from berth.placement.write import batch as batch_write
from berth.placement.write.batch import NewConsumer, OwnerIds, Verdict
from berth.placement.write.retry import retryable
from berth.scheduler import recheck
from berth.scheduler.recheck import Placed

log = structlog.get_logger("berth.scheduler.group_commit")

BATCH_SIZE = Histogram(
    "berth_scheduler_claim_batch_size",
    "Claim requests written per transaction by the group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


@dataclass(eq=False)
class Job:
    """One all-or-nothing claim request waiting for its transaction."""

    consumers: Sequence[NewConsumer]
    known: ResourceClassCache
    claims: Sequence[Placed] = ()  # the same claims with the rules they relied on
    done: threading.Event = field(default_factory=threading.Event)
    verdict: Verdict | None = None
    error: BaseException | None = None
    transactions: int = 0  # transactions it was judged in
    lead: bool = False  # woken to lead, not because it is settled


class GroupCommit:
    """Writes queued claims of many threads in shared transactions."""

    def __init__(self, db: Database, retries: int, max_batch: int = 64) -> None:
        self.db = db
        self.retries = max(1, retries)
        self.max_batch = max_batch
        self.owners = OwnerIds()
        self.lock = threading.Lock()
        self.queue: list[Job] = []
        self.busy = False
        # Consumers are new as a rule: the unique key finds the exceptions, and
        # only the transaction after such a failure reads which ones exist.
        self.check_existing = False

    def claim(
        self,
        consumers: Sequence[NewConsumer],
        known: ResourceClassCache,
        claims: Sequence[Placed] = (),
    ) -> Job:
        """Write ``consumers`` (all or none); the settled job (verdict, transactions).

        ``claims``: the same claims as placed, whose rules are judged again.
        """
        job = Job(consumers, known, claims)
        with self.lock:
            self.queue.append(job)
            leading = not self.busy
            self.busy = True
        if not leading:
            job.done.wait()
            if not job.lead:
                return self._settled(job)
        self._lead(job)
        return self._settled(job)

    @staticmethod
    def _settled(job: Job) -> Job:
        if job.error is not None:
            raise job.error
        return job

    def _lead(self, mine: Job) -> None:
        """Write batches until ``mine`` is settled, then pass the lead on."""
        settled: list[Job] = []
        while mine.verdict is None and mine.error is None:
            with self.lock:
                batch = self.queue[: self.max_batch]
                del self.queue[: len(batch)]
            settled += self._write(batch)
        with self.lock:
            if self.queue:
                following = self.queue[0]
                following.lead = True
                following.done.set()
            else:
                self.busy = False
        for job in settled:
            if job is not mine:
                job.done.set()

    def _write(self, batch: list[Job]) -> list[Job]:
        """One transaction for ``batch``; the jobs settled (the others are queued again)."""
        for job in batch:
            job.transactions += 1
        BATCH_SIZE.observe(len(batch))
        try:
            with self.db.write() as conn:
                known = batch[0].known if _same_classes(batch) else ResourceClassCache(conn)
                requests = [j.consumers for j in batch]
                rules = recheck.for_batch([j.claims for j in batch])
                verdicts = batch_write.write(
                    conn, requests, known, self.owners, self.check_existing, rules
                )
        except Exception as exc:  # every waiting thread must hear of what is not run again
            self.owners.committed(False)
            if not retryable(exc):
                return _fail(batch, exc) + self._fail_queued(exc)
            # A unique-key race (consumer, project) or a transient error: run again.
            self.check_existing = isinstance(exc, IntegrityError)
            log.debug("claim batch rolled back, trying again", size=len(batch), error=str(exc))
            verdicts = [Verdict(batch_write.CONFLICT, str(exc)) for _ in batch]
        else:
            self.owners.committed(True)
            self.check_existing = False
        settled = []
        with self.lock:
            for job, verdict in zip(batch, verdicts, strict=True):
                if verdict.kind == batch_write.CONFLICT and job.transactions < self.retries:
                    self.queue.append(job)
                    continue
                job.verdict = verdict
                settled.append(job)
        return settled

    def _fail_queued(self, exc: Exception) -> list[Job]:
        """The queued jobs, failed with ``exc`` if it says the database is unavailable."""
        if unavailable(exc) is None:
            return []
        if isinstance(exc, CommitUnknown) and isinstance(exc.__cause__, Exception):
            exc = exc.__cause__  # their claims never reached a COMMIT: nothing is unknown
        with self.lock:
            queued = self.queue[:]
            self.queue.clear()
        return _fail(queued, exc)


def _same_classes(batch: list[Job]) -> bool:
    """True when every job's class names are known to the first job's cache."""
    known = batch[0].known.by_name
    return all(
        rc in known for j in batch for c in j.consumers for a in c.resources.values() for rc in a
    )


def _fail(batch: list[Job], exc: BaseException) -> list[Job]:
    for job in batch:
        job.error = exc
    return batch
