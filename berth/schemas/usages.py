"""JSON Schemas for the query of ``GET /usages``."""

from __future__ import annotations

import copy
from typing import Any

_ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}

_QUERY_1_9: dict[str, Any] = {
    "type": "object",
    "properties": {"project_id": copy.deepcopy(_ID), "user_id": copy.deepcopy(_ID)},
    "required": ["project_id"],
    "additionalProperties": False,
}

# 1.38 adds consumer_type: a type name, or the keywords "all" and "unknown".
_QUERY_1_38: dict[str, Any] = copy.deepcopy(_QUERY_1_9)
_QUERY_1_38["properties"]["consumer_type"] = {
    "type": "string",
    "pattern": "^[A-Z0-9_]+$|^all|^unknown$",
    "minLength": 1,
    "maxLength": 255,
}

# (minimum microversion, schema), newest first.
TOTAL_USAGES_QUERY = [((1, 38), _QUERY_1_38), ((1, 9), _QUERY_1_9)]
