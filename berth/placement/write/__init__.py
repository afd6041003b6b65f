"""The allocation-write engine: every write of allocations goes through here.

Two writers share one set of stages, all inside ONE transaction::

                     replace (the API: PUT/POST /allocations,  batch (new consumers,
                     the reshaper)                             many requests at once)
    consumers        generation check, owner, type        ──   existing ones refused
    capacity         capacity.read + Ledger: every amount judged by Capacity.refusal
                     all or nothing                       ──   per request, in order
    swap             generations.bump_all (raising)       ──   generations.swap (batched)
    rows             rows.insert_allocations (+ consumers' generation swap / rows)
    retry            retry.atomically: the transaction again while it loses a race

No row is locked: a write reads generations and usage, then swaps the
generations it relies on; a lost swap rolls back (replace) or refuses the
request (batch).  Nothing is over-committed.

The errors raised (``berth.placement.errors`` unless named here)::

    Conflict
    ├── capacity.InvalidAllocation   the amounts do not fit (refusal texts in capacity)
    ├── capacity.InventoryInUse      inventory to remove is still allocated
    └── ConcurrentUpdate             a generation swap was lost: retried by atomically,
        │                            then answered with retry.RETRIES_EXHAUSTED
        └── StaleGeneration          the client's generation is not current: never retried
    InvalidInput                     an allocation names a provider that does not exist
    NotFound                         an unknown resource class
"""

from berth.placement.write.batch import NewConsumer, OwnerIds, Verdict
from berth.placement.write.capacity import Capacity, InvalidAllocation, InventoryInUse, Ledger
from berth.placement.write.replace import ConsumerAllocations, WritePlan
from berth.placement.write.retry import RETRIES_EXHAUSTED, atomically, retryable

__all__ = [
    "RETRIES_EXHAUSTED",
    "Capacity",
    "ConsumerAllocations",
    "InvalidAllocation",
    "InventoryInUse",
    "Ledger",
    "NewConsumer",
    "OwnerIds",
    "Verdict",
    "WritePlan",
    "atomically",
    "retryable",
]
