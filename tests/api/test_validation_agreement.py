"""fastjsonschema's quick check never accepts a document jsonschema refuses.

berth checks request bodies and queries with a schema compiled by
fastjsonschema and asks jsonschema only when that check refuses
(berth/schemas/validation.py).  The shortcut is sound only if the quick check
is never more lenient than jsonschema; this test holds every schema berth
has to that, with documents generated near each schema (mostly valid, then
off by one in a bound, a type, a pattern, a missing or extra key).
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import berth.schemas
from berth.schemas import validation

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "CUSTOM_A", "1.5", str(uuid.UUID(int=7)), "a\n", "\x00"]),
    st.just([]),
    st.just({}),
)


def _schemas() -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema defined at module level in berth.schemas (versioned tables included)."""
    seen: set[int] = set()
    for info in pkgutil.iter_modules(berth.schemas.__path__):
        module = importlib.import_module(f"berth.schemas.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            found = []
            if isinstance(value, dict) and ("type" in value or "anyOf" in value):
                found = [value]
            elif isinstance(value, list) and all(
                isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict)
                for item in value
            ):
                found = [schema for _, schema in value]
            for schema in found:
                if id(schema) not in seen:
                    seen.add(id(schema))
                    yield f"{info.name}.{name}", schema


SCHEMAS = list(_schemas())


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    if schema.get("format") == "uuid":
        return st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex), st.text(max_size=40))
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", low + 20)
    if "pattern" in schema:
        matching = st.from_regex(schema["pattern"]).filter(lambda s: len(s) <= high + 1)
        return st.one_of(matching, st.text(max_size=high + 1))
    return st.text(min_size=max(0, low - 1), max_size=high + 1)


def _number(schema: Mapping[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", -(2**31))
    high = schema.get("maximum", 2**31)
    ints = st.integers(low - 2, high + 2)
    edges = st.sampled_from([low, high, low - 1, high + 1, float(low), float(high) + 0.5])
    return st.one_of(ints, edges) if integer else st.one_of(ints, edges, st.floats(low, high))


def _object(schema: Mapping[str, Any], depth: int) -> st.SearchStrategy[Any]:
    keys: dict[str, st.SearchStrategy[Any]] = {
        name: near(sub, depth + 1) for name, sub in schema.get("properties", {}).items()
    }
    for pattern, sub in schema.get("patternProperties", {}).items():
        keys[f"~{pattern}"] = near(sub, depth + 1)
    named = sorted(k for k in keys if not k.startswith("~"))
    patterned = [k[1:] for k in keys if k.startswith("~")]
    key_names = st.one_of(
        *([st.sampled_from(named)] if named else []),
        *(st.from_regex(pattern) for pattern in patterned),
        st.text(max_size=8),
    )

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for name in schema.get("required", []):
            if name in keys and draw(st.integers(0, 9)) > 0:
                doc[name] = draw(keys[name])
        for _ in range(draw(st.integers(0, 4))):
            name = draw(key_names)
            if name in keys:
                doc[name] = draw(keys[name])
            else:  # a pattern's key, or an unknown one
                fitting = [s for k, s in keys.items() if k.startswith("~")]
                doc[name] = draw(st.one_of(*fitting, JUNK))
        return doc

    return build()


def near(schema: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents that mostly follow ``schema``, and sometimes miss by a little."""
    if depth > 5:
        return JUNK
    options: list[st.SearchStrategy[Any]] = []
    if "enum" in schema:
        options.append(st.sampled_from(list(schema["enum"])))
    for key in ("anyOf", "oneOf"):
        options += [near(sub, depth + 1) for sub in schema.get(key, [])]
    types = schema.get("type", [])
    for kind in [types] if isinstance(types, str) else types:
        if kind == "string":
            options.append(_string(schema))
        elif kind in ("integer", "number"):
            options.append(_number(schema, kind == "integer"))
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "null":
            options.append(st.none())
        elif kind == "array":
            items = schema.get("items", {})
            low = schema.get("minItems", 0)
            high = schema.get("maxItems", low + 4)
            element = near(items, depth + 1) if isinstance(items, dict) else JUNK
            options.append(st.lists(element, min_size=max(0, low - 1), max_size=min(high + 1, 6)))
        elif kind == "object":
            options.append(_object(schema, depth))
    return st.one_of(*options, JUNK) if options else JUNK


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=[name for name, _ in SCHEMAS])
def test_quick_check_is_never_more_lenient(name: str, schema: Mapping[str, Any]) -> None:
    quick = validation.quick_check(schema)
    assert quick is not None, f"{name}: fastjsonschema cannot compile it (every request would pay)"
    cls = jsonschema.validators.validator_for(schema)
    strict = cls(schema, format_checker=validation.FORMAT_CHECKER)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(near(schema))
    def agree(document: Any) -> None:
        try:
            quick(document)
        except Exception:  # refused: jsonschema decides, nothing to compare
            return
        assert strict.is_valid(document), f"{name}: quick check accepted {document!r}"

    agree()


def test_schema_error_answers_jsonschemas_error() -> None:
    schema = {
        "type": "object",
        "properties": {"total": {"type": "integer", "minimum": 1}},
        "required": ["total"],
        "additionalProperties": False,
    }
    assert validation.schema_error({"total": 3}, schema) is None
    error = validation.schema_error({"total": 0}, schema)
    assert error is not None
    assert error.message == "0 is less than the minimum of 1"
    # fastjsonschema refuses "A\n" for "^[A-Z]+$"; jsonschema (Python's re) accepts it.
    assert validation.schema_error("A\n", {"type": "string", "pattern": "^[A-Z]+$"}) is None


def test_there_are_schemas_to_check() -> None:
    assert len(SCHEMAS) > 30
