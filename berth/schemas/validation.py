"""JSON Schema checks shared by the API and the query parsers (no HTTP here).

:func:`schema_error` answers the error ``jsonschema.validate`` would raise;
callers turn it into their own error (a domain error, or a 400 at the edge).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import jsonschema

FORMAT_CHECKER = jsonschema.FormatChecker()


def is_uuid_like(value: object) -> bool:
    """True for anything oslo's ``is_uuid_like`` accepts."""
    if not isinstance(value, str):
        return False
    try:
        canonical = str(uuid.UUID(value)).replace("-", "")
    except (TypeError, ValueError, AttributeError):
        return False
    stripped = value.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "").lower()
    return canonical == stripped


FORMAT_CHECKER.checks("uuid")(is_uuid_like)

_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def schema_error(data: Any, schema: Mapping[str, Any]) -> jsonschema.ValidationError | None:
    """The error ``jsonschema.validate`` would raise, or None.

    Validators are built (and their schema checked) once per schema object:
    checking a schema costs milliseconds, more than most requests.
    """
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        cached = (schema, cls(schema, format_checker=FORMAT_CHECKER))
        _VALIDATORS[id(schema)] = cached
    error: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
        cached[1].iter_errors(data)
    )
    return error
