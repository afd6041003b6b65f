"""The tables of the placement model, each by the one short name berth.placement uses."""

from __future__ import annotations

from berth.db import tables as t

RP = t.resource_providers
INV = t.inventories
ALLOC = t.allocations
RC = t.resource_classes
CONSUMER = t.consumers
PROJECT = t.projects
USER = t.users
CONSUMER_TYPE = t.consumer_types
TRAIT = t.traits
RP_TRAIT = t.resource_provider_traits
AGG = t.placement_aggregates
RP_AGG = t.resource_provider_aggregates
CHANGE_LOG = t.change_log
