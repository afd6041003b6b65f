"""The allocation-write engine: every write of allocations goes through here.

Two writers share the stages, each write inside ONE transaction::

              replace.py                           batch.py
              the API (PUT/POST /allocations,      new consumers, many all-or-nothing
              the reshaper): one all-or-nothing    requests at once (the scheduler's
              write of some consumers              claims), a Verdict per request

    consumers generation check (client's),   ──   a consumer that exists: EXISTS
              owner, type; provider ids
    capacity  capacity.read + one Ledger     ──   capacity.read_by_uuid + one Ledger,
              (every amount judged by               requests judged in order: FULL
              Capacity.refusal)
    swap      generations.bump_all: a lost   ──   generations.swap (one statement):
              swap rolls everything back           a lost swap is a CONFLICT verdict
    rows      rows.insert_allocations; consumer    rows.insert_new_consumers,
              generations swapped                  rows.insert_allocations
    retry     retry.atomically runs the whole transaction again while it loses a race
              (the group commit re-queues CONFLICT verdicts itself, and asks
              retry.retryable which errors are worth another transaction)

No row is locked beforehand: a write reads generations and usage, judges,
then swaps the generations it relied on; capacity is only ever judged
against usage no other writer has changed since.  Nothing is over-committed.

What the stages raise (``berth.placement.errors`` unless named here)::

    PlacementError
    ├── Conflict
    │   ├── capacity.InvalidAllocation   the amounts do not fit (texts: capacity)
    │   ├── capacity.InventoryInUse      inventory to remove is still allocated
    │   └── ConcurrentUpdate             a swap was lost: run again by atomically,
    │       │                            then answered retry.RETRIES_EXHAUSTED
    │       └── StaleGeneration          the client's generation is not current:
    │                                    answered at once, never run again
    ├── InvalidInput                     an allocation on a provider that does not exist
    └── NotFound                         an unknown resource class
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
