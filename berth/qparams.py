"""Parsing of the query parameters shared by provider and candidate queries.

Each function takes the raw strings and returns plain data, raising
:class:`InvalidQuery` (a domain error; the API answers it with a 400) with
the reference's wording on malformed input.  Nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from berth.placement import errors
from berth.schemas.validation import is_uuid_like, schema_error

# The largest amount an inventory's max_unit (a signed 32-bit column) allows.
MAX_AMOUNT = 2**31 - 1

RESOURCES_FORM = (
    "Badly formed resources parameter. Expected resources query string parameter "
    "in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {}."
)


class InvalidQuery(errors.InvalidInput):
    """A malformed query parameter (the API answers 400 with the message and code)."""


def validate_query(params: Mapping[str, Sequence[str]], schema: Mapping[str, Any]) -> None:
    """Check the last value of each parameter against ``schema`` (else :class:`InvalidQuery`)."""
    flat = {key: values[-1] for key, values in params.items()}
    error = schema_error(flat, schema)
    if error is not None:
        raise InvalidQuery(f"Invalid query string parameters: {error}")


def parse_resources(value: str) -> dict[str, int]:
    """``VCPU:2,MEMORY_MB:1024`` -> {"VCPU": 2, "MEMORY_MB": 1024}."""
    if value.strip() == "":
        raise InvalidQuery(RESOURCES_FORM.format("empty string"))
    result: dict[str, int] = {}
    for item in value.split(","):
        try:
            name, raw_amount = item.split(":")
        except ValueError:
            raise InvalidQuery(RESOURCES_FORM.format(item)) from None
        try:
            amount = int(raw_amount)
        except ValueError:
            raise InvalidQuery(
                f"Requested resource {name} expected positive integer amount. Got: {raw_amount}."
            ) from None
        if amount < 1:
            raise InvalidQuery(f"Requested resource {name} requires amount >= 1. Got: {amount}.")
        if amount > MAX_AMOUNT:
            # No inventory takes it, and PostgreSQL refuses it as an INTEGER parameter.
            raise InvalidQuery(
                f"Requested resource {name} requires amount <= {MAX_AMOUNT}. Got: {amount}."
            )
        result[name] = amount
    return result


def _parse_any_traits(value: str, allow_any: bool) -> tuple[list[set[str]], set[str]]:
    if not allow_any:
        raise InvalidQuery(
            "Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' "
            f"only supported since microversion 1.39. Got: {value}"
        )
    any_traits = {part.strip() for part in value[3:].split(",")}
    if not all(any_traits):
        raise InvalidQuery(
            "Invalid query string parameters: Expected 'required' parameter value of the "
            f"form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty trait in: {value}"
        )
    if any(trait.startswith("!") for trait in any_traits):
        raise InvalidQuery(
            "Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' "
            f"does not support forbidden traits. Got: {value}"
        )
    return [any_traits], set()


def parse_traits(
    value: str, allow_forbidden: bool, allow_any: bool
) -> tuple[list[set[str]], set[str]]:
    """One ``required`` value -> (list of any-of trait sets, forbidden traits)."""
    if value.startswith("in:"):
        return _parse_any_traits(value, allow_any)
    names = [part.strip() for part in value.split(",")]
    forbidden = {name.lstrip("!") for name in names if name.startswith("!")}
    if not all(names) or not all(forbidden):
        form = "HW_CPU_X86_VMX,!CUSTOM_MAGIC" if allow_forbidden else "HW_CPU_X86_VMX,CUSTOM_MAGIC"
        raise InvalidQuery(
            "Invalid query string parameters: Expected 'required' parameter value of the "
            f"form: {form}. Got an empty trait in: {value}"
        )
    if forbidden and not allow_forbidden:
        raise InvalidQuery(
            "Invalid query string parameters: Expected 'required' parameter value of the "
            f"form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {value}"
        )
    required = [{name} for name in names if not name.startswith("!")]
    return required, forbidden


def parse_required(
    values: Sequence[str], allow_forbidden: bool, allow_any: bool
) -> tuple[list[set[str]], set[str]]:
    """All ``required`` values (only the last one before 1.39)."""
    if not allow_any:
        values = values[-1:]
    required: list[set[str]] = []
    forbidden: set[str] = set()
    for value in values:
        req, forb = parse_traits(value, allow_forbidden, allow_any)
        required += req
        forbidden |= forb
    return required, forbidden


def parse_member_of_value(value: str) -> tuple[set[str], set[str]]:
    """One ``member_of`` value -> (any-of required aggregates, forbidden ones)."""
    if "," in value and not (value.startswith("in:") or value.startswith("!in:")):
        raise InvalidQuery(
            "Multiple values for 'member_of' must be prefixed with the 'in:' or '!in:' "
            f"keyword using the valid microversion. Got: {value}"
        )
    required: set[str] = set()
    forbidden: set[str] = set()
    if value.startswith("!in:"):
        forbidden = set(value[4:].split(","))
    elif value.startswith("!"):
        forbidden = {value[1:]}
    elif value.startswith("in:"):
        required = set(value[3:].split(","))
    else:
        required = {value}
    for agg in required | forbidden:
        if not is_uuid_like(agg):
            raise InvalidQuery(
                "Invalid query string parameters: Expected 'member_of' parameter to "
                f"contain valid UUID(s). Got: {agg}"
            )
    return required, forbidden


def parse_member_of(
    values: Sequence[str], allow_multiple: bool, allow_forbidden: bool, suffix: str = ""
) -> tuple[list[set[str]], set[str]]:
    """All ``member_of`` values -> (list of any-of sets, forbidden aggregates)."""
    if not allow_multiple and len(values) > 1:
        raise InvalidQuery(f"Multiple member_of{suffix} parameters are not supported")
    required: list[set[str]] = []
    forbidden: set[str] = set()
    for value in values:
        req, forb = parse_member_of_value(value)
        if req:
            required.append(req)
        if forb:
            if not allow_forbidden:
                raise InvalidQuery(
                    f"Forbidden member_of{suffix} parameters are not supported in the "
                    "specified microversion"
                )
            forbidden |= forb
    return required, forbidden


def parse_in_tree(value: str) -> str:
    """An ``in_tree`` value: a provider uuid."""
    stripped = value.strip()
    if not is_uuid_like(stripped):
        raise InvalidQuery(
            "Invalid query string parameters: Expected 'in_tree' parameter to be a format "
            f"of uuid. Got: {value}"
        )
    return stripped
