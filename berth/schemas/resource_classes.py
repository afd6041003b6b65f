"""JSON Schemas for ``/resource_classes``."""

from __future__ import annotations

from typing import Any

# Upper-case letters, digits and underscores after the CUSTOM_ prefix.
CUSTOM_NAME_PATTERN = "^CUSTOM_[A-Z0-9_]+$"

# The body of POST /resource_classes and of PUT /resource_classes/{name}
# before 1.7; from 1.7 on the {name} of the URL is checked with it too.
RESOURCE_CLASS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": CUSTOM_NAME_PATTERN, "maxLength": 255},
    },
    "required": ["name"],
    "additionalProperties": False,
}
