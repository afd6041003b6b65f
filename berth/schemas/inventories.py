"""JSON Schemas for ``/resource_providers/{uuid}/inventories`` bodies."""

from __future__ import annotations

import copy
from typing import Any

# The largest value of a signed 32-bit integer column.
MAX_INT = 0x7FFFFFFF
# The largest single-precision float PostgreSQL and MySQL store.
SQL_FLOAT_MAX = 3.40282e38
RESOURCE_CLASS_PATTERN = "^[A-Z0-9_]+$"


def _bounded_int(minimum: int) -> dict[str, Any]:
    return {"type": "integer", "maximum": MAX_INT, "minimum": minimum}


_FIELDS: dict[str, Any] = {
    "resource_provider_generation": {"type": "integer"},
    "total": _bounded_int(1),
    "reserved": _bounded_int(0),
    "min_unit": _bounded_int(1),
    "max_unit": _bounded_int(1),
    "step_size": _bounded_int(1),
    "allocation_ratio": {"type": "number", "maximum": SQL_FLOAT_MAX},
}


def _record(required: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**copy.deepcopy(_FIELDS), **extra},
        "required": required,
        "additionalProperties": False,
    }


# PUT /resource_providers/{uuid}/inventories/{resource_class}
UPDATE_ONE = _record(["total", "resource_provider_generation"])

# POST /resource_providers/{uuid}/inventories
CREATE = _record(
    ["total", "resource_class"],
    resource_class={"type": "string", "pattern": RESOURCE_CLASS_PATTERN},
)

# PUT /resource_providers/{uuid}/inventories.  Keys that cannot be class
# names are validated too (the reference lets them through unchecked and
# fails with a 500); the unknown-class check then rejects them.
REPLACE_ALL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resource_provider_generation": {"type": "integer"},
        "inventories": {
            "type": "object",
            "patternProperties": {RESOURCE_CLASS_PATTERN: _record(["total"])},
            "additionalProperties": _record(["total"]),
        },
    },
    "required": ["resource_provider_generation", "inventories"],
    "additionalProperties": False,
}
