"""JSON Schemas for ``PUT /resource_providers/{uuid}/aggregates``."""

from __future__ import annotations

import copy
from typing import Any

_AGGREGATE_LIST: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "format": "uuid"},
    "uniqueItems": True,
}

# (minimum microversion, schema), newest first.  Before 1.19 the body is a
# bare list; from 1.19 it carries the provider generation.
REPLACE = [
    (
        (1, 19),
        {
            "type": "object",
            "properties": {
                "aggregates": copy.deepcopy(_AGGREGATE_LIST),
                "resource_provider_generation": {"type": "integer"},
            },
            "required": ["aggregates", "resource_provider_generation"],
            "additionalProperties": False,
        },
    ),
    ((1, 1), copy.deepcopy(_AGGREGATE_LIST)),
]
