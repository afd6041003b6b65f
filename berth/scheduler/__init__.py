"""berth's scheduler: pick hosts for instances and claim their resources atomically.

The pipeline (one module per stage)::

    candidates   berth.scheduler.candidates  the allocation-candidates engine, in process
    filters      berth.scheduler.filters     host enabled, zone, tenant isolation, ...
    weighers     berth.scheduler.weighers    free RAM/CPU/disk, instances, soft groups, metrics
    choice       berth.scheduler.pipeline    random among the top host_subset_size
    claim        berth.scheduler.claims      the API's atomic allocation write + group rule

Errors: :class:`NoValidHost` (409, with an explanation), plus the domain
errors of :mod:`berth.placement.errors`.  See docs/scheduler.md.
"""

from __future__ import annotations

from berth.scheduler.answer import Answer, HostChoice, NoValidHost, Selection
from berth.scheduler.service import select_destinations
from berth.scheduler.spec import RequestSpec, ServerGroupSpec, from_body, parse_flavor

__all__ = [
    "Answer",
    "HostChoice",
    "NoValidHost",
    "RequestSpec",
    "Selection",
    "ServerGroupSpec",
    "from_body",
    "parse_flavor",
    "select_destinations",
]
