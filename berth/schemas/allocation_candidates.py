"""JSON Schemas for the query of ``GET /allocation_candidates``, per microversion.

Query values are validated as strings (the last value of each parameter);
the constraints are the reference's so jsonschema words errors the same way.
"""

from __future__ import annotations

import copy
from typing import Any

from berth.schemas import versioned

# Suffixes of request groups: numbers before 1.33, names from 1.33 on.
SUFFIX_NUMBER = r"[1-9][0-9]*"
SUFFIX_NAME = r"[a-zA-Z0-9_-]{1,64}"
GROUP_KEYS = ("resources", "required", "member_of", "in_tree")

_LIMIT = {
    "type": ["integer", "string"],
    "pattern": "^[1-9][0-9]*$",
    "minimum": 1,
    "minLength": 1,
}


def _flat(*keys: str) -> dict[str, Any]:
    """Before 1.25: only the unsuffixed parameters, ``resources`` required."""
    props: dict[str, Any] = {"resources": {"type": "string"}}
    if "limit" in keys:
        props["limit"] = copy.deepcopy(_LIMIT)
    for key in ("required", "member_of"):
        if key in keys:
            props[key] = {"type": ["string"]}
    return {
        "type": "object",
        "properties": props,
        "required": ["resources"],
        "additionalProperties": False,
    }


def _grouped(suffix: str, group_keys: tuple[str, ...], *extra: str) -> dict[str, Any]:
    """From 1.25: suffixed groups as pattern properties, plus request-wide keys."""
    props: dict[str, Any] = {
        "limit": copy.deepcopy(_LIMIT),
        "group_policy": {"type": "string", "enum": ["none", "isolate"]},
    }
    for key in extra:
        props[key] = {"type": ["string"]}
    # Key order matters: a validation error message prints the schema.
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "patternProperties": {f"^{key}({suffix})?$": {"type": "string"} for key in group_keys},
    }


_BEFORE_TREE = ("resources", "required", "member_of")

# (minimum microversion, schema), newest first.
QUERY = [
    ((1, 36), _grouped(SUFFIX_NAME, GROUP_KEYS, "root_required", "same_subtree")),
    ((1, 35), _grouped(SUFFIX_NAME, GROUP_KEYS, "root_required")),
    ((1, 33), _grouped(SUFFIX_NAME, GROUP_KEYS)),
    ((1, 31), _grouped(SUFFIX_NUMBER, GROUP_KEYS)),
    ((1, 25), _grouped(SUFFIX_NUMBER, _BEFORE_TREE)),
    ((1, 21), _flat("limit", "required", "member_of")),
    ((1, 17), _flat("limit", "required")),
    ((1, 16), _flat("limit")),
    ((1, 10), _flat()),
]

__all__ = ["GROUP_KEYS", "QUERY", "SUFFIX_NAME", "SUFFIX_NUMBER", "versioned"]
