"""JSON Schemas for resource provider bodies and list queries."""

from __future__ import annotations

import copy
from typing import Any

from berth.schemas import versioned

_NAME = {"type": "string", "maxLength": 200}
_UUID = {"type": "string", "format": "uuid"}
_PARENT = {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}


def _body(with_uuid: bool, with_parent: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"name": copy.deepcopy(_NAME)}
    if with_uuid:
        props["uuid"] = copy.deepcopy(_UUID)
    if with_parent:
        props["parent_provider_uuid"] = copy.deepcopy(_PARENT)
    return {
        "type": "object",
        "properties": props,
        "required": ["name"],
        "additionalProperties": False,
    }


# (minimum microversion, schema), newest first.
CREATE = [((1, 14), _body(True, True)), ((1, 0), _body(True, False))]
UPDATE = [((1, 14), _body(False, True)), ((1, 0), _body(False, False))]


def _query(*extra: str) -> dict[str, Any]:
    props: dict[str, Any] = {"name": {"type": "string"}, "uuid": copy.deepcopy(_UUID)}
    kinds = {
        "member_of": {"type": "string"},
        "resources": {"type": "string"},
        "in_tree": copy.deepcopy(_UUID),
        "required": {"type": "string"},
    }
    for key in extra:
        props[key] = kinds[key]
    return {"type": "object", "properties": props, "additionalProperties": False}


LIST_QUERY = [
    ((1, 18), _query("member_of", "resources", "in_tree", "required")),
    ((1, 14), _query("member_of", "resources", "in_tree")),
    ((1, 4), _query("member_of", "resources")),
    ((1, 3), _query("member_of")),
    ((1, 0), _query()),
]

__all__ = ["CREATE", "LIST_QUERY", "UPDATE", "versioned"]
