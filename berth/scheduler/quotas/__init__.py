"""Quotas: limits per project and per user, usage, and reservations for queued requests.

A scope (:class:`Scope`) is a project or a user in a project; a limit caps
``instances`` or a resource class in one scope.  Usage is what the scope's
allocations hold (as ``GET /usages`` sums them; ``instances``: consumers
holding allocations) plus what its live reservations set aside.  A
reservation is made when a request is queued, judged against every limit
of the project and the user, and ends when a claim consumes it, a failure
or a deletion releases it, or it expires.

Every function takes the caller's connection, inside a transaction:

    limits        set_limits, get_limits, delete_limits
    usage         usage, usage_of
    reservations  reserve, reserve_each (run them through ``atomically``,
                  ``operation=OPERATION``), release, release_many, consume (in the
                  claim's transaction), find, purge_expired

Errors (``berth.placement.errors`` and one of its own)::

    Conflict
    ├── QuotaExceeded       over a limit; ``excesses`` lists each one broken
    └── ConcurrentUpdate    the project's generation swap was lost (run again)
    InvalidInput            an unknown resource class, a negative limit, ...

See docs/scheduler.md, "Quotas".
"""

from __future__ import annotations

from berth.scheduler.quotas.judge import judge
from berth.scheduler.quotas.limits import delete_limits, get_limits, set_limits
from berth.scheduler.quotas.model import (
    INSTANCES,
    OPERATION,
    QUOTA_EXCEEDED,
    Excess,
    QuotaExceeded,
    Reservation,
    Scope,
    Usage,
)
from berth.scheduler.quotas.reservations import (
    consume,
    find,
    purge_expired,
    release,
    release_many,
    reserve,
    reserve_each,
)
from berth.scheduler.quotas.usage import usage, usage_of

__all__ = [
    "INSTANCES",
    "OPERATION",
    "QUOTA_EXCEEDED",
    "Excess",
    "QuotaExceeded",
    "Reservation",
    "Scope",
    "Usage",
    "consume",
    "delete_limits",
    "find",
    "get_limits",
    "judge",
    "purge_expired",
    "release",
    "release_many",
    "reserve",
    "reserve_each",
    "set_limits",
    "usage",
    "usage_of",
]
