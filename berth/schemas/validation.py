"""JSON Schema checks shared by the API and the query parsers (no HTTP here).

:func:`schema_error` answers the error ``jsonschema.validate`` would raise;
callers turn it into their own error (a domain error, or a 400 at the edge).

jsonschema decides, and words every error (its texts are part of Placement's
contract), but walking a document with it costs 50 to 150 microseconds, 5 to
9 % of a worker's time on the write path.  So each schema is also compiled
to Python code by fastjsonschema, which checks a document in a few
microseconds: what it accepts is accepted, and only what it refuses goes to
jsonschema, whose verdict stands (fastjsonschema is stricter in places: its
``pattern`` ``$`` does not match before a final newline).  That fastjsonschema
never accepts a document jsonschema refuses is a property test over every
schema berth has (tests/api/test_validation_agreement.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import fastjsonschema
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

_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any, Any]] = {}


def quick_check(schema: Mapping[str, Any]) -> Any:
    """``schema`` compiled by fastjsonschema (None when it cannot compile it)."""
    try:
        return fastjsonschema.compile(
            dict(schema),
            formats={"uuid": is_uuid_like},
            use_default=False,  # never fill in (change) the document checked
            detailed_exceptions=False,  # jsonschema words the errors
        )
    except fastjsonschema.JsonSchemaDefinitionException:
        return None


def _validators(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], Any, Any]:
    """(schema, jsonschema validator, fastjsonschema check), built once per schema object.

    Checking a schema and compiling it cost milliseconds, more than most
    requests; schemas are module-level constants (or built once per
    microversion), so the table stays small.
    """
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        cached = (schema, cls(schema, format_checker=FORMAT_CHECKER), quick_check(schema))
        _VALIDATORS[id(schema)] = cached
    return cached


def schema_error(data: Any, schema: Mapping[str, Any]) -> jsonschema.ValidationError | None:
    """The error ``jsonschema.validate`` would raise, or None."""
    _, validator, quick = _validators(schema)
    if quick is not None:
        try:
            quick(data)
            return None
        except fastjsonschema.JsonSchemaValueException:
            pass  # jsonschema decides, and words the error
    error: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
        validator.iter_errors(data)
    )
    return error
