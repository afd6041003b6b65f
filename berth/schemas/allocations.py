"""JSON Schemas for allocation bodies: PUT /allocations/{uuid} and POST /allocations.

Each table maps a minimum microversion to its schema, newest first, for
:func:`berth.schemas.versioned`.  The constraints are the reference's, so a
rejected body gets the same jsonschema message.
"""

from __future__ import annotations

import copy
from typing import Any

UUID_PATTERN = "^[0-9a-fA-F-]{36}$"
RC_PATTERN = "^[A-Z0-9_]+$"
CONSUMER_TYPE_PATTERN = RC_PATTERN
GROUP_PATTERN = r"[a-zA-Z0-9_-]{1,64}"

_EXTERNAL_ID = {"type": "string", "minLength": 1, "maxLength": 255}
_GENERATION = {"type": ["integer", "null"], "additionalProperties": False}


def _resources() -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "patternProperties": {RC_PATTERN: {"type": "integer", "minimum": 1}},
        "additionalProperties": False,
    }


def _list_form(with_owner: bool) -> dict[str, Any]:
    """1.0-1.11: allocations as a list of {resource_provider, resources}."""
    item = {
        "type": "object",
        "properties": {
            "resource_provider": {
                "type": "object",
                "properties": {"uuid": {"type": "string", "format": "uuid"}},
                "additionalProperties": False,
                "required": ["uuid"],
            },
            "resources": _resources(),
        },
        "required": ["resource_provider", "resources"],
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"allocations": {"type": "array", "minItems": 1, "items": item}},
        "required": ["allocations"],
        "additionalProperties": False,
    }
    if with_owner:
        schema["properties"]["project_id"] = copy.deepcopy(_EXTERNAL_ID)
        schema["properties"]["user_id"] = copy.deepcopy(_EXTERNAL_ID)
        schema["required"] += ["project_id", "user_id"]
    return schema


def _dict_form(min_providers: int) -> dict[str, Any]:
    """1.12+: allocations keyed by provider uuid, with project and user."""
    per_provider = {
        "type": "object",
        "properties": {"generation": {"type": "integer"}, "resources": _resources()},
        "required": ["resources"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "allocations": {
                "type": "object",
                "minProperties": min_providers,
                "patternProperties": {UUID_PATTERN: per_provider},
                "additionalProperties": False,
            },
            "project_id": copy.deepcopy(_EXTERNAL_ID),
            "user_id": copy.deepcopy(_EXTERNAL_ID),
        },
        "additionalProperties": False,
        "required": ["allocations", "project_id", "user_id"],
    }


MAPPINGS = {
    "type": "object",
    "minProperties": 1,
    "patternProperties": {
        GROUP_PATTERN: {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "format": "uuid"},
        }
    },
}


def _consumer(minor: int) -> dict[str, Any]:
    """One consumer's body in the dict form, as of microversion 1.<minor>."""
    schema = _dict_form(min_providers=0 if minor >= 13 else 1)
    if minor >= 28:
        schema["properties"]["consumer_generation"] = copy.deepcopy(_GENERATION)
        schema["required"].append("consumer_generation")
    if minor >= 34:
        schema["properties"]["mappings"] = copy.deepcopy(MAPPINGS)
    if minor >= 38:
        schema["properties"]["consumer_type"] = {
            "type": "string",
            "pattern": CONSUMER_TYPE_PATTERN,
            "minLength": 1,
            "maxLength": 255,
        }
        schema["required"].append("consumer_type")
    return schema


def many(minor: int, min_consumers: int = 1) -> dict[str, Any]:
    """POST /allocations (and the reshaper's allocations) at 1.<minor>."""
    return {
        "type": "object",
        "minProperties": min_consumers,
        "additionalProperties": False,
        "patternProperties": {UUID_PATTERN: _consumer(minor)},
    }


def _put_12() -> dict[str, Any]:
    # 1.12-1.27: at least one provider (an empty dict needs a generation).
    return _dict_form(min_providers=1)


# PUT /allocations/{consumer_uuid}: (minimum microversion, schema), newest first.
PUT = [
    ((1, 38), _consumer(38)),
    ((1, 34), _consumer(34)),
    ((1, 28), _consumer(28)),
    ((1, 12), _put_12()),
    ((1, 8), _list_form(with_owner=True)),
    ((1, 0), _list_form(with_owner=False)),
]

# POST /allocations (from 1.13).
POST = [
    ((1, 38), many(38)),
    ((1, 34), many(34)),
    ((1, 28), many(28)),
    ((1, 13), many(13)),
]
