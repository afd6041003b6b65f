"""How old a host-state change is when a worker's host catalog applies it.

The server stamps every write of a namespace with the time it received it
(``received_at``, :mod:`berth.scheduler.state_store`); a worker that learns
of the change (by whichever sync backend) and applies it to its
:class:`~berth.scheduler.hoststate.HostCatalog` observes *now - received_at*
in ``berth_host_state_staleness_seconds`` (:mod:`berth.metrics`).  One
observation per namespace that changed, per worker: a write overwritten
before a worker caught up is not observed there (the newest one is).  Full
reloads (a worker's first look, or one that fell behind) observe nothing:
what they read is the state's age, not how late the worker learned of it.

The stamp and this clock are the same machine's when the writer and the
worker share a host; across hosts their clocks' difference adds in.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from berth.metrics import HOST_STATE_STALENESS
from berth.scheduler.host_attributes import HostAttributes
from berth.scheduler.state_store import NamespaceState


def observe_applied(
    previous: HostAttributes | None,
    namespaces: Mapping[str, NamespaceState],
    now: datetime.datetime | None = None,
) -> None:
    """Observe the staleness of each namespace in ``namespaces`` that ``previous`` (what
    the catalog held for the host, None: nothing) did not hold at this generation."""
    held = previous.namespaces if previous is not None else {}
    when = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    for name, entry in namespaces.items():
        old = held.get(name)
        if old is None or old.generation != entry.generation:
            age = (when - entry.received_at).total_seconds()
            HOST_STATE_STALENESS.observe(max(0.0, age))
