"""JSON Schemas per resource, chosen by microversion with :func:`versioned`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from microversion_parse import Version

VersionedSchemas = Sequence[tuple[tuple[int, int], dict[str, Any]]]


def versioned(table: VersionedSchemas, version: Version) -> dict[str, Any]:
    """The schema of the newest entry whose minimum ``version`` reaches."""
    for minimum, schema in table:
        if version.matches(minimum):
            return schema
    raise LookupError(f"no schema for microversion {version}")
