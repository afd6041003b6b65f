"""JSON Schemas for ``/traits`` and ``/resource_providers/{uuid}/traits``."""

from __future__ import annotations

from typing import Any

# Any trait name, standard or custom.
TRAIT_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}

# The only names PUT /traits/{name} may create.
CUSTOM_TRAIT_NAME: dict[str, Any] = {**TRAIT_NAME, "pattern": "^CUSTOM_[A-Z0-9_]+$"}

# PUT /resource_providers/{uuid}/traits
PROVIDER_TRAITS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "traits": {"type": "array", "items": TRAIT_NAME},
        "resource_provider_generation": {"type": "integer"},
    },
    "required": ["traits", "resource_provider_generation"],
    "additionalProperties": False,
}

# The query of GET /traits.
LIST_TRAITS_QUERY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "associated": {"type": "string"},
    },
    "additionalProperties": False,
}
