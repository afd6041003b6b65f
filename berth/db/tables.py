"""The database schema, as SQLAlchemy Core tables.

The layout follows OpenStack Placement's so that `berth import` can copy a
reference database row for row; berth adds no columns the API cannot see.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime, nullable=True),
        Column("updated_at", DateTime, nullable=True),
    ]


resource_classes = Table(
    "resource_classes",
    metadata,
    # Ids are assigned by berth (standard classes keep os-resource-classes'
    # index, which starts at 0), so no AUTO_INCREMENT.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("name"),
)

resource_providers = Table(
    "resource_providers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("name", Unicode(200), nullable=True),
    Column("generation", Integer, nullable=False, default=0),
    Column("root_provider_id", Integer, ForeignKey("resource_providers.id"), nullable=True),
    Column("parent_provider_id", Integer, ForeignKey("resource_providers.id"), nullable=True),
    *_timestamps(),
    UniqueConstraint("uuid"),
    UniqueConstraint("name"),
    Index("ix_resource_providers_root", "root_provider_id"),
    Index("ix_resource_providers_parent", "parent_provider_id"),
)

inventories = Table(
    "inventories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("resource_provider_id", Integer, nullable=False),
    Column("resource_class_id", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("min_unit", Integer, nullable=False),
    Column("max_unit", Integer, nullable=False),
    Column("step_size", Integer, nullable=False),
    Column("allocation_ratio", Float, nullable=False),
    *_timestamps(),
    UniqueConstraint("resource_provider_id", "resource_class_id"),
    Index("ix_inventories_resource_class", "resource_class_id"),
)

allocations = Table(
    "allocations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("resource_provider_id", Integer, nullable=False),
    Column("consumer_id", String(36), nullable=False),
    Column("resource_class_id", Integer, nullable=False),
    Column("used", Integer, nullable=False),
    *_timestamps(),
    Index("ix_allocations_rp_class_used", "resource_provider_id", "resource_class_id", "used"),
    Index("ix_allocations_resource_class", "resource_class_id"),
    Index("ix_allocations_consumer", "consumer_id"),
)

placement_aggregates = Table(
    "placement_aggregates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    *_timestamps(),
    UniqueConstraint("uuid"),
)

resource_provider_aggregates = Table(
    "resource_provider_aggregates",
    metadata,
    Column("resource_provider_id", Integer, primary_key=True),
    Column("aggregate_id", Integer, primary_key=True),
    *_timestamps(),
    Index("ix_rp_aggregates_aggregate", "aggregate_id"),
)

traits = Table(
    "traits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Unicode(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("name"),
)

resource_provider_traits = Table(
    "resource_provider_traits",
    metadata,
    Column("trait_id", Integer, ForeignKey("traits.id"), primary_key=True),
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id"), primary_key=True),
    *_timestamps(),
    Index("ix_rp_traits_rp_trait", "resource_provider_id", "trait_id"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("external_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("external_id"),
)

consumer_types = Table(
    "consumer_types",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Unicode(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("name"),
)

consumers = Table(
    "consumers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("generation", Integer, nullable=False, default=0, server_default="0"),
    Column("consumer_type_id", Integer, ForeignKey("consumer_types.id"), nullable=True),
    *_timestamps(),
    UniqueConstraint("uuid"),
    Index("ix_consumers_project_uuid", "project_id", "uuid"),
    Index("ix_consumers_project_user_uuid", "project_id", "user_id", "uuid"),
    Index("ix_consumers_consumer_type", "consumer_type_id"),
)

# The change feed: one row per provider touched by a committed write, in the
# same transaction as the write.  Workers that keep provider state in memory
# read it to catch up (see berth.sync.feed).  provider_id 0 means "reload
# everything" (e.g. a resource class or trait catalogue change).
change_log = Table(
    "change_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider_id", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_change_log_created_at", "created_at"),
)

# -- berth's scheduler (a berth extension; see docs/scheduler.md) ---------------------------
# Host state in namespaces: one free-form JSON object per (provider, namespace),
# with its own generation (compare-and-swapped by every write) and the time
# the server received the write.  ``operator`` holds disabled / zone,
# ``compute`` the metrics; reporters add others.
scheduler_host_state = Table(
    "scheduler_host_state",
    metadata,
    Column("provider_uuid", String(36), primary_key=True),
    Column("namespace", String(64), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("body", Text, nullable=False),  # JSON object
    Index("ix_scheduler_host_state_namespace_received_at", "namespace", "received_at"),
    Index("ix_scheduler_host_state_received_at", "received_at"),
)

# Insert-only change log of host state: one row per namespace written or deleted,
# in the writing transaction.  Workers follow it (berth.sync.feed) instead of a
# counter row every writer would have to update (and so serialise on).
scheduler_state_changes = Table(
    "scheduler_state_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider_uuid", String(36), nullable=False),
    Column("namespace", String(64), nullable=False),
    Column("at", DateTime, nullable=False),
    Index("ix_scheduler_state_changes_at", "at"),
)

scheduler_aggregates = Table(
    "scheduler_aggregates",
    metadata,
    Column("aggregate_uuid", String(36), primary_key=True),
    Column("metadata", Text, nullable=False),  # JSON object: key -> string
    *_timestamps(),
)

# The same insert-only log for aggregate metadata.
scheduler_aggregate_changes = Table(
    "scheduler_aggregate_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("aggregate_uuid", String(36), nullable=False),
    Column("at", DateTime, nullable=False),
    Index("ix_scheduler_aggregate_changes_at", "at"),
)

scheduler_server_groups = Table(
    "scheduler_server_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("name", Unicode(255), nullable=True),
    Column("project_id", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("policy", String(32), nullable=False),
    Column("max_server_per_host", Integer, nullable=True),
    # Compare-and-swapped by every claim into the group (see berth.scheduler.claims).
    Column("generation", Integer, nullable=False, default=0),
    *_timestamps(),
    UniqueConstraint("uuid"),
)

scheduler_server_group_members = Table(
    "scheduler_server_group_members",
    metadata,
    Column("group_id", Integer, primary_key=True),
    Column("instance_uuid", String(36), primary_key=True),
    Column("host_uuid", String(36), nullable=True),  # root provider; None: not placed
    *_timestamps(),
    Index("ix_scheduler_server_group_members_instance", "instance_uuid"),
)

# Flavors: what one instance asks for, named once and chosen by uuid or name.
# A flavor is read and written whole, never searched by its parts in SQL, so
# its parts are JSON text (as ``scheduler_host_state.body``): one row per flavor,
# one SELECT for the whole list, the same column types on every database.
scheduler_flavors = Table(
    "scheduler_flavors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("name", Unicode(255), nullable=False),
    Column("resources", Text, nullable=False),  # JSON object: resource class -> amount
    Column("required_traits", Text, nullable=False),  # JSON array of trait names, sorted
    Column("forbidden_traits", Text, nullable=False),  # JSON array of trait names, sorted
    Column("extra_specs", Text, nullable=False),  # JSON object: key -> string
    *_timestamps(),
    UniqueConstraint("uuid"),
    UniqueConstraint("name"),
)

# One row per flavor change, written in the changing transaction and never
# deleted: their count is the flavors' revision (see berth.scheduler.flavors).
scheduler_flavor_changes = Table(
    "scheduler_flavor_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flavor_uuid", String(36), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Scheduler worker processes (any host) announce themselves here; live
# workers share the providers out among themselves (partitioning).
scheduler_workers = Table(
    "scheduler_workers",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("heartbeat_at", DateTime, nullable=False),
    *_timestamps(),
)

# -- quotas (scheduler 1.1; see docs/scheduler.md, "Quotas") -----------------------------------
# Limits per project (user_id "") and per user in a project.  ``resource`` is
# "instances" or a resource class name.  Project and user ids are Keystone's,
# as strings: a project may have limits before it has any consumer.
quota_limits = Table(
    "quota_limits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False, default=""),
    Column("resource", String(255), nullable=False),
    Column("hard_limit", Integer, nullable=False),
    *_timestamps(),
    UniqueConstraint("project_id", "user_id", "resource"),
    CheckConstraint("hard_limit >= 0", name="ck_quota_limits_hard_limit"),
)

# Amounts set aside for requests that are queued and not yet claimed: one row
# per (reservation, resource), "instances" among the resources.  A row counts
# until ``expires_at`` (strictly before it), whether or not it was purged.
quota_reservations = Table(
    "quota_reservations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("resource", String(255), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("uuid", "resource"),
    Index("ix_quota_reservations_project_expires", "project_id", "expires_at"),
    Index("ix_quota_reservations_expires", "expires_at"),
)

# One row per project that ever reserved: reservations of a project are
# serialised by compare-and-swapping its generation (no row is locked first).
quota_projects = Table(
    "quota_projects",
    metadata,
    Column("project_id", String(255), primary_key=True),
    Column("generation", Integer, nullable=False),
)

# -- pull-based dispatch (scheduler 1.2; see docs/pull.md) ------------------------------------
# The work queues: one per flavor and one per (flavor, capability set) asked for.
# ``synced`` is false until the queue's JetStream consumer and key-value entry are
# made (an outbox: whoever finds it false makes them).
pull_queues = Table(
    "pull_queues",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("flavor_uuid", String(36), nullable=False),
    Column("capabilities", Text, nullable=False),  # JSON array of trait names, sorted
    Column("synced", Boolean, nullable=False, default=False),
    *_timestamps(),
    Index("ix_pull_queues_flavor_uuid", "flavor_uuid"),
)

# A client's request: ``count`` instances of a flavor, whose resources and traits
# are copied here (the flavor may be deleted while the request waits).
pull_requests = Table(
    "pull_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("flavor_uuid", String(36), nullable=False),
    Column("count", Integer, nullable=False),
    Column("queue", String(64), nullable=False),
    Column("resources", Text, nullable=False),  # JSON object: class -> amount per instance
    Column("required_traits", Text, nullable=False),  # JSON array: flavor's + capabilities
    Column("forbidden_traits", Text, nullable=False),  # JSON array
    Column("capabilities", Text, nullable=False),  # JSON array, sorted
    Column("project_id", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("server_group", String(36), nullable=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("uuid"),
)

# One row per instance (its uuid is also its Placement consumer).  Every move of
# ``state`` is a compare-and-swap on (state, host, attempt); ``published`` false
# is the outbox: the instance's message (work when queued, delete when deleting)
# is still to be sent.  ``queued_at``: when it last became queued (the timeout).
pull_instances = Table(
    "pull_instances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("request_uuid", String(36), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("host", String(36), nullable=True),
    Column("reason", Text, nullable=True),
    Column("reservation", String(36), nullable=True),
    Column("attempt", Integer, nullable=False, default=0),
    Column("published", Boolean, nullable=False, default=False),
    Column("queued_at", DateTime, nullable=False),
    *_timestamps(),
    UniqueConstraint("uuid"),
    Index("ix_pull_instances_request_uuid", "request_uuid"),
    # The sweeper: queued too long; claimed by a dead host; unpublished rows.
    Index("ix_pull_instances_state_queued_at", "state", "queued_at"),
    Index("ix_pull_instances_state_host", "state", "host"),
    Index("ix_pull_instances_published_state", "published", "state"),
)

# Hosts that pull work, their agent and their last heartbeat.
pull_hosts = Table(
    "pull_hosts",
    metadata,
    Column("host_uuid", String(36), primary_key=True),
    Column("agent", String(64), nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    Index("ix_pull_hosts_heartbeat_at", "heartbeat_at"),
)

# One short name per table, used by every module that writes SQL (never a
# local alias of its own, so a query reads the same wherever it is).
RC = resource_classes
RP = resource_providers
INV = inventories
ALLOC = allocations
AGG = placement_aggregates
RP_AGG = resource_provider_aggregates
TRAIT = traits
RP_TRAIT = resource_provider_traits
PROJECT = projects
USER = users
CONSUMER_TYPE = consumer_types
CONSUMER = consumers
CHANGE_LOG = change_log
HOST_STATE = scheduler_host_state
STATE_CHANGE = scheduler_state_changes
SCHED_AGG = scheduler_aggregates
AGG_CHANGE = scheduler_aggregate_changes
SERVER_GROUP = scheduler_server_groups
GROUP_MEMBER = scheduler_server_group_members
FLAVOR = scheduler_flavors
FLAVOR_CHANGE = scheduler_flavor_changes
SCHED_WORKER = scheduler_workers
QUOTA_LIMIT = quota_limits
QUOTA_RESERVATION = quota_reservations
QUOTA_PROJECT = quota_projects
PULL_QUEUE = pull_queues
PULL_REQUEST = pull_requests
PULL_INSTANCE = pull_instances
PULL_HOST = pull_hosts
