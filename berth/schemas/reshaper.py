"""JSON Schemas for POST /reshaper (1.30+), per microversion."""

from __future__ import annotations

from typing import Any

from berth.schemas.allocations import RC_PATTERN, UUID_PATTERN, many

MAX_INT = 0x7FFFFFFF
SQL_SP_FLOAT_MAX = 3.40282e38


def _bounded(minimum: int) -> dict[str, Any]:
    return {"type": "integer", "maximum": MAX_INT, "minimum": minimum}


# One class of inventory, as in PUT /resource_providers/{uuid}/inventories.
INVENTORY_RECORD = {
    "type": "object",
    "properties": {
        "resource_provider_generation": {"type": "integer"},
        "total": _bounded(1),
        "reserved": _bounded(0),
        "min_unit": _bounded(1),
        "max_unit": _bounded(1),
        "step_size": _bounded(1),
        "allocation_ratio": {"type": "number", "maximum": SQL_SP_FLOAT_MAX},
    },
    "required": ["total"],
    "additionalProperties": False,
}

PROVIDER_INVENTORIES = {
    "type": "object",
    "properties": {
        "resource_provider_generation": {"type": "integer"},
        "inventories": {
            "type": "object",
            "patternProperties": {RC_PATTERN: INVENTORY_RECORD},
        },
    },
    "required": ["resource_provider_generation", "inventories"],
    "additionalProperties": False,
}


def _reshape(minor: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "inventories": {
                "type": "object",
                "patternProperties": {UUID_PATTERN: PROVIDER_INVENTORIES},
                # Reshaping nothing is not a reshape.
                "minProperties": 1,
                "additionalProperties": False,
            },
            "allocations": many(minor, min_consumers=0),
        },
        "required": ["inventories", "allocations"],
        "additionalProperties": False,
    }


# (minimum microversion, schema), newest first.
RESHAPE = [((1, 38), _reshape(38)), ((1, 34), _reshape(34)), ((1, 30), _reshape(28))]
