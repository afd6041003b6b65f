"""JSON Schemas of the scheduler extension (``/scheduler/...``), per scheduler version.

The extension has its own version line (``OpenStack-API-Version:
scheduler 1.1``); each table maps a minimum version to a schema, newest
first, for :func:`berth.schemas.versioned`.
"""

from __future__ import annotations

from typing import Any

from berth.schemas import VersionedSchemas

POLICIES = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
MAX_INSTANCES = 1000

UUID: dict[str, Any] = {"type": "string", "format": "uuid"}
NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}
TRAIT_LIST: dict[str, Any] = {"type": "array", "items": NAME, "uniqueItems": True}
UUID_LIST: dict[str, Any] = {"type": "array", "items": UUID, "maxItems": MAX_INSTANCES}

RESOURCES: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
    "additionalProperties": False,
}

RULES: dict[str, Any] = {
    "type": "object",
    "properties": {"max_server_per_host": {"type": "integer", "minimum": 1}},
    "additionalProperties": False,
}

# What describes a server group, in a select request (which names its uuid) and on create.
GROUP_PROPERTIES: dict[str, Any] = {
    "uuid": UUID,
    "name": NAME,
    "policy": {"enum": POLICIES},
    "rules": RULES,
}

GROUP: dict[str, Any] = {
    "type": "object",
    "properties": GROUP_PROPERTIES,
    "required": ["uuid"],
    "additionalProperties": False,
}

SELECT_V1_0: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {
                "resources": RESOURCES,
                "extra_specs": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["resources"],
            "additionalProperties": False,
        },
        "num_instances": {"type": "integer", "minimum": 1, "maximum": MAX_INSTANCES},
        "instance_uuids": {**UUID_LIST, "minItems": 1, "uniqueItems": True},
        "required_traits": TRAIT_LIST,
        "forbidden_traits": TRAIT_LIST,
        "member_of": {"type": "array", "items": {**UUID_LIST, "minItems": 1}},
        "availability_zone": NAME,
        "project_id": NAME,
        "user_id": NAME,
        "server_group": {"oneOf": [UUID, GROUP]},
        "scheduler_hints": {
            "type": "object",
            "properties": {"same_host": UUID_LIST, "different_host": UUID_LIST},
            "additionalProperties": False,
        },
        "ignore_hosts": {"type": "array", "items": NAME},
        "all_or_nothing": {"type": "boolean"},
        "dry_run": {"type": "boolean"},
        "explain": {"type": "boolean"},
        "alternates": {"type": "integer", "minimum": 0, "maximum": 50},
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
SELECT: VersionedSchemas = [((1, 0), SELECT_V1_0)]

# Flavors came with scheduler 1.1 (below it the routes are not there).
FLAVOR_V1_1: dict[str, Any] = {
    "type": "object",
    "properties": {
        "uuid": UUID,
        "name": NAME,
        "resources": RESOURCES,
        "required_traits": TRAIT_LIST,
        "forbidden_traits": TRAIT_LIST,
        "extra_specs": {
            "type": "object",
            "propertyNames": {"minLength": 1, "maxLength": 255},
            "additionalProperties": {"type": "string", "maxLength": 255},
        },
    },
    "required": ["name", "resources"],
    "additionalProperties": False,
}
FLAVOR: VersionedSchemas = [((1, 1), FLAVOR_V1_1)]

HOST: VersionedSchemas = [
    (
        (1, 0),
        {
            "type": "object",
            "properties": {
                "disabled": {"type": "boolean"},
                "disabled_reason": {"type": ["string", "null"], "maxLength": 255},
                "availability_zone": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                "metrics": {
                    "type": "object",
                    "propertyNames": {"minLength": 1, "maxLength": 255},
                    "additionalProperties": {"type": "number"},
                },
            },
            "additionalProperties": False,
        },
    )
]

# Host state (scheduler 1.3): a namespace's new object (PUT) or merge patch (PATCH), and
# the generation the writer read (0: the namespace holds nothing yet).  What the object
# may hold is its namespace's business (berth.scheduler.namespaces).
HOST_STATE_WRITE: VersionedSchemas = [
    (
        (1, 3),
        {
            "type": "object",
            "properties": {
                "generation": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                "state": {"type": "object"},
            },
            "required": ["generation", "state"],
            "additionalProperties": False,
        },
    )
]

AGGREGATE_METADATA: VersionedSchemas = [
    (
        (1, 0),
        {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "propertyNames": {"minLength": 1, "maxLength": 255},
                    "additionalProperties": {"type": "string", "maxLength": 255},
                }
            },
            "required": ["metadata"],
            "additionalProperties": False,
        },
    )
]

GROUP_CREATE: VersionedSchemas = [
    (
        (1, 0),
        {
            "type": "object",
            "properties": {**GROUP_PROPERTIES, "project_id": NAME, "user_id": NAME},
            "required": ["policy"],
            "additionalProperties": False,
        },
    )
]

MEMBER: VersionedSchemas = [
    (
        (1, 0),
        {
            "type": "object",
            "properties": {"host": {"oneOf": [UUID, {"type": "null"}]}},
            "additionalProperties": False,
        },
    )
]

# Quota limits (scheduler 1.1): "instances" or a resource class name -> limit.
QUOTA_LIMITS: VersionedSchemas = [
    (
        (1, 1),
        {
            "type": "object",
            "properties": {
                "limits": {
                    "type": "object",
                    "propertyNames": {"maxLength": 255},
                    "patternProperties": {
                        "^(instances|[A-Z0-9_]+)$": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 2**31 - 1,
                        }
                    },
                    "additionalProperties": False,
                }
            },
            "required": ["limits"],
            "additionalProperties": False,
        },
    )
]

# Pull dispatch (scheduler 1.2; docs/pull.md).
TRAIT_NAME: dict[str, Any] = {"type": "string", "pattern": "^[A-Z0-9_]{1,255}$"}
REQUEST_V1_2: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": NAME,
        "count": {"type": "integer", "minimum": 1, "maximum": MAX_INSTANCES},
        "project_id": NAME,
        "user_id": NAME,
        "server_group": UUID,
        "capabilities": {
            "type": "array",
            "items": TRAIT_NAME,
            "uniqueItems": True,
            "maxItems": 64,
        },
    },
    "required": ["flavor", "project_id", "user_id"],
    "additionalProperties": False,
}
REQUEST: VersionedSchemas = [((1, 2), REQUEST_V1_2)]

# An agent's batches: at most this many items per call.
MAX_BATCH = 1000
MAX_HOSTS = 10000
AGENT_NAME: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
HEARTBEAT: VersionedSchemas = [
    (
        (1, 2),
        {
            "type": "object",
            "properties": {
                "agent": AGENT_NAME,
                "hosts": {"type": "array", "items": UUID, "maxItems": MAX_HOSTS},
            },
            "required": ["agent", "hosts"],
            "additionalProperties": False,
        },
    )
]


def _batch(key: str, item: dict[str, Any]) -> VersionedSchemas:
    """A body ``{key: [item, ...]}`` of 1 to MAX_BATCH items."""
    return [
        (
            (1, 2),
            {
                "type": "object",
                "properties": {
                    key: {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_BATCH}
                },
                "required": [key],
                "additionalProperties": False,
            },
        )
    ]


CLAIMS = _batch(
    "claims",
    {
        "type": "object",
        "properties": {
            "instance": UUID,
            "host": UUID,
            "attempt": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        },
        "required": ["instance", "host", "attempt"],
        "additionalProperties": False,
    },
)
HOST_REPORTS = _batch(
    "instances",
    {
        "type": "object",
        "properties": {"instance": UUID, "host": UUID},
        "required": ["instance", "host"],
        "additionalProperties": False,
    },
)
