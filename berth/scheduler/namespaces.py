"""What a host-state namespace may hold: names, sizes, JSON Schemas, merge patches.

A namespace of a host holds one JSON object.  :class:`StateRules` (built
once per process from the settings, owned by :class:`berth.services.Services`)
judges a new object before it is written: at most
``scheduler_host_state_max_bytes`` serialised, and valid under the
namespace's JSON Schema when it has one.  ``operator`` and ``compute`` have
built-in schemas; the operator registers more as ``<namespace>.json`` files
in ``scheduler_host_state_schema_dir``, read when the process starts (a bad
file stops it with a message naming the file).

The errors, each with its code (the HTTP status is the edge's business)::

    StateNotFound   (NotFound)         berth.scheduler.state_not_found
    StateConflict   (StaleGeneration)  berth.scheduler.state_conflict
    StateInvalid    (InvalidInput)     berth.scheduler.state_invalid
    StateTooLarge   (TooLarge)         berth.scheduler.state_too_large
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from berth.placement import errors
from berth.settings import Settings

OPERATOR = "operator"
COMPUTE = "compute"

STATE_NOT_FOUND = "berth.scheduler.state_not_found"
STATE_CONFLICT = "berth.scheduler.state_conflict"
STATE_INVALID = "berth.scheduler.state_invalid"
STATE_TOO_LARGE = "berth.scheduler.state_too_large"

# Lower case only: on MariaDB names differing in case would share a row.
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class StateNotFound(errors.NotFound):
    """The host has nothing in that namespace."""

    default_code = STATE_NOT_FOUND


class StateConflict(errors.StaleGeneration):
    """The generation sent is not the namespace's current one."""

    default_code = STATE_CONFLICT


class StateInvalid(errors.InvalidInput):
    """The new state breaks its namespace's JSON Schema."""

    default_code = STATE_INVALID


class StateTooLarge(errors.TooLarge):
    """The new state is over ``scheduler_host_state_max_bytes``."""

    default_code = STATE_TOO_LARGE


BUILT_IN: dict[str, dict[str, Any]] = {
    # What operators decide; claims recheck disabled and the zone (berth.scheduler.recheck).
    OPERATOR: {
        "type": "object",
        "properties": {
            "disabled": {"type": "boolean"},
            "disabled_reason": {"type": ["string", "null"], "maxLength": 255},
            "availability_zone": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
        },
        "additionalProperties": False,
    },
    # What the compute service reports: numeric metrics, and anything else it likes.
    COMPUTE: {
        "type": "object",
        "properties": {
            "metrics": {
                "type": "object",
                "propertyNames": {"minLength": 1, "maxLength": 255},
                "additionalProperties": {"type": "number"},
            }
        },
    },
}


def check_name(namespace: str) -> None:
    """InvalidInput unless ``namespace`` is a valid name."""
    if not NAME.match(namespace):
        raise errors.InvalidInput(
            f"Bad namespace {namespace!r}: 1 to 64 of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit."
        )


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as RFC 7396 (JSON Merge Patch) says."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _validator(schema: Mapping[str, Any], where: str) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"{where}: not a valid JSON Schema: {exc.message}") from None
    validator: jsonschema.protocols.Validator = cls(
        schema, format_checker=jsonschema.FormatChecker()
    )
    return validator


def load_schema_dir(directory: str) -> dict[str, dict[str, Any]]:
    """The schemas in ``directory`` by namespace (ValueError naming a bad file)."""
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"scheduler_host_state_schema_dir: {directory} is not a directory")
    found: dict[str, dict[str, Any]] = {}
    for file in sorted(path.glob("*.json")):
        namespace = file.stem
        where = f"scheduler_host_state_schema_dir: {file}"
        if not NAME.match(namespace):
            raise ValueError(f"{where}: {namespace!r} is not a namespace name")
        if namespace in BUILT_IN:
            raise ValueError(f"{where}: the {namespace} namespace's schema is built in")
        try:
            schema = orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"{where}: cannot read JSON: {exc}") from None
        if not isinstance(schema, dict):
            raise ValueError(f"{where}: a schema must be a JSON object")
        found[namespace] = schema
    return found


class StateRules:
    """The size limit and the schema of every namespace that has one."""

    def __init__(self, max_bytes: int, extra: Mapping[str, dict[str, Any]] | None = None):
        self.max_bytes = max_bytes
        self.schemas = {**BUILT_IN, **(extra or {})}
        self._validators = {ns: _validator(s, f"schema {ns}") for ns, s in self.schemas.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> StateRules:
        """The rules the settings name (ValueError for a bad schema directory or file)."""
        directory = settings.scheduler_host_state_schema_dir
        extra = load_schema_dir(directory) if directory else {}
        for namespace, schema in extra.items():
            _validator(schema, f"scheduler_host_state_schema_dir: {namespace}.json")
        return cls(settings.scheduler_host_state_max_bytes, extra)

    def check(self, namespace: str, state: Any) -> bytes:
        """``state`` serialised, once it passes: an object, within the size, schema-valid."""
        if not isinstance(state, dict):
            raise StateInvalid(f"The state of namespace {namespace} must be a JSON object.")
        try:
            text = orjson.dumps(state)
        except orjson.JSONEncodeError as exc:  # a lone surrogate, an integer past 64 bits
            raise StateInvalid(
                f"The state of namespace {namespace} cannot be stored: {exc}"
            ) from None
        if len(text) > self.max_bytes:
            raise StateTooLarge(
                f"The state of namespace {namespace} would be {len(text)} bytes; "
                f"the limit is {self.max_bytes}."
            )
        validator = self._validators.get(namespace)
        if validator is not None:
            error = jsonschema.exceptions.best_match(validator.iter_errors(state))
            if error is not None:
                raise StateInvalid(
                    f"The state of namespace {namespace} does not match its schema "
                    f"at {error.json_path}: {error.message}"
                )
        return text
