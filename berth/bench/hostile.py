"""Hostile request pieces: poisoned JSON, undecodable text, every write's body shape.

Shared by ``berth bench fuzz`` and the property tests of
``tests/api/test_bad_input.py``.  A body shape is a write's JSON with a
:class:`S` slot in each leaf holding a value that passes the schema; putting
poison in one slot and good values in the others gets the poison past the
schema to the database.  Poison and shapes are bytes-level: tokens such as
``NaN`` or a lone surrogate escape cannot be written by a JSON encoder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

RP_UUID = "5a8a9f17-5e5a-4c31-9a6f-0c2b5f2f7a10"
CONSUMER = "9b2c5c4e-7b1a-4a6e-8d0a-3c1e7c2f0b11"
GROUP = "3f0c8d5e-2b7a-4c1e-9d6f-5a4b3c2d1e0f"
OTHER_GROUP = "7d4c2a1e-6b3f-4e8d-a5c9-1f2e3d4c5b6a"
# Both version lines: the scheduler routes newer than scheduler 1.0 (flavors) answer 404 below.
LATEST = "placement latest, scheduler latest"

# JSON tokens no database stores (or no parser should take), and text that is not UTF-8.
POISON = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b'"\\ud800"',
    b'"x\\udfff"',
    b'"\\u0000"',
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1" + b"0" * 40,
    b"1" * 5000,
    b'"\xff\xfe"',
    b'"\xc3\x28"',
    b'"\xed\xa0\x80"',
]
# What the databases refuse or overflow on, once past the schema.
DB_POISON = [
    b'"\\u0000"',
    b'"x\\u0000y"',
    b"2147483648",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"1e308",
    b'"' + b"x" * 300 + b'"',
    b"-1",
]
BAD_UTF8 = ["%ff", "%c3%28", "%ed%a0%80", "%f4%90%80%80", "%00", "%e2%82"]
LATIN1_JUNK = ["\xff\xfe", "placement 1.\xff", "\xc3\x28", "admin\xed\xa0\x80"]
# Slot values that are fine somewhere (and wrong elsewhere).
GOOD_SLOTS: list[Any] = [0, 1, 8, -1, 2**31, 2**63 - 1, -(2**63), None, "", "x", True, 1.5]
GOOD_SLOTS += [RP_UUID, "VCPU", "INSTANCE", "az1", "affinity", [], {}]
# Query parameters: the names the routes read, and values too large, empty or odd.
QUERY_KEYS = ["limit", "name", "uuid", "member_of", "resources", "in_tree", "required", "a"]
QUERY_VALUES = ["9223372036854775808", "-1", "1" * 30, "VCPU:99999999999999999999", "VCPU:1"]
QUERY_VALUES += ["in:" + RP_UUID, RP_UUID, "", "=", "%", "%2C%2C", "x" * 300]


@dataclass(frozen=True)
class S:
    """A slot in a body shape, with a value that passes."""

    good: Any


_ALLOCATION = {
    "allocations": {RP_UUID: {"resources": {"VCPU": S(1)}}},
    "project_id": S("p"),
    "user_id": S("u"),
    "consumer_generation": S(None),
    "consumer_type": S("INSTANCE"),
}
_INVENTORY = {"total": S(8), "reserved": S(0), "allocation_ratio": S(1.0), "max_unit": S(8)}
_GENERATION = {"resource_provider_generation": S(1)}
# A namespace's new object (PUT) or merge patch (PATCH), free-form in the namespace "net".
_HOST_STATE = {"generation": S(0), "state": {"k": S("v"), "n": {"m": S(1)}}}
ROUTE_BODIES: dict[tuple[str, str], Any] = {
    ("/resource_providers", "POST"): {"name": S("n"), "parent_provider_uuid": S(None)},
    ("/resource_providers/{uuid}", "PUT"): {"name": S("rp"), "parent_provider_uuid": S(None)},
    ("/resource_providers/{uuid}/inventories", "POST"): {
        "resource_class": S("DISK_GB"),
        "total": S(8),
    },
    ("/resource_providers/{uuid}/inventories", "PUT"): {
        **_GENERATION,
        "inventories": {"VCPU": _INVENTORY},
    },
    ("/resource_providers/{uuid}/inventories/{resource_class}", "PUT"): {
        **_GENERATION,
        **_INVENTORY,
    },
    ("/resource_providers/{uuid}/aggregates", "PUT"): {**_GENERATION, "aggregates": [S(GROUP)]},
    ("/resource_providers/{uuid}/traits", "PUT"): {**_GENERATION, "traits": [S("CUSTOM_FOO")]},
    ("/allocations/{consumer_uuid}", "PUT"): _ALLOCATION,
    ("/allocations", "POST"): {CONSUMER: _ALLOCATION},
    ("/resource_classes", "POST"): {"name": S("CUSTOM_BAR")},
    ("/resource_classes/{name}", "PUT"): {"name": S("CUSTOM_BAZ")},
    ("/reshaper", "POST"): {
        "inventories": {RP_UUID: {**_GENERATION, "inventories": {"VCPU": _INVENTORY}}},
        "allocations": {CONSUMER: _ALLOCATION},
    },
    ("/scheduler/select_destinations", "POST"): {
        "flavor": {"resources": {"VCPU": S(1)}, "extra_specs": {"k": S("v")}},
        "availability_zone": S("az1"),
        "num_instances": S(1),
        "project_id": S("p"),
        "ignore_hosts": [S("h")],
        "dry_run": S(True),
    },
    ("/scheduler/flavors", "POST"): {
        "name": S("m1"),
        "resources": {"VCPU": S(1)},
        "required_traits": [S("CUSTOM_FOO")],
        "extra_specs": {"k": S("v")},
    },
    ("/scheduler/hosts/{provider_uuid}", "PUT"): {
        "disabled": S(False),
        "disabled_reason": S("r"),
        "availability_zone": S("az1"),
        "metrics": {"cpu.percent": S(5)},
    },
    ("/scheduler/hosts/{provider_uuid}/state/{namespace}", "PUT"): _HOST_STATE,
    ("/scheduler/hosts/{provider_uuid}/state/{namespace}", "PATCH"): _HOST_STATE,
    ("/scheduler/aggregates/{uuid}/metadata", "PUT"): {"metadata": {"k": S("v")}},
    ("/scheduler/server_groups", "POST"): {"uuid": S(OTHER_GROUP), "policy": S("affinity")},
    ("/scheduler/server_groups/{uuid}/members/{instance_uuid}", "PUT"): {"host": S(None)},
    ("/scheduler/requests", "POST"): {
        "flavor": S("m1"),
        "count": S(1),
        "project_id": S("p"),
        "user_id": S("u"),
        "capabilities": [S("CUSTOM_FOO")],
    },
    ("/scheduler/pull/heartbeat", "POST"): {"agent": S("a1"), "hosts": [S(RP_UUID)]},
    ("/scheduler/pull/claims", "POST"): {
        "claims": [{"instance": S(CONSUMER), "host": S(RP_UUID), "attempt": S(0)}]
    },
    ("/scheduler/pull/active", "POST"): {
        "instances": [{"instance": S(CONSUMER), "host": S(RP_UUID)}]
    },
    ("/scheduler/pull/deleted", "POST"): {
        "instances": [{"instance": S(CONSUMER), "host": S(RP_UUID)}]
    },
}
# Routes whose body is JSON only up to a microversion.
JSON_UNTIL = {"/resource_classes/{name}": "placement 1.6"}

# Path parameters naming what SEED_REQUESTS made.
REAL = {
    "uuid": RP_UUID,
    "provider_uuid": RP_UUID,
    "consumer_uuid": CONSUMER,
    "instance_uuid": CONSUMER,
    "resource_class": "VCPU",
    "name": "CUSTOM_FOO",
    "namespace": "net",
}
_ALLOCATION_BODY = {
    "allocations": {RP_UUID: {"resources": {"VCPU": 1}}},
    "project_id": "p",
    "user_id": "u",
    "consumer_generation": None,
    "consumer_type": "INSTANCE",
}
# (method, path, JSON body): a provider with inventory, a trait, a consumer, a server group.
SEED_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/resource_providers", {"name": "rp", "uuid": RP_UUID}),
    (
        "PUT",
        f"/resource_providers/{RP_UUID}/inventories",
        {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}},
    ),
    ("PUT", "/traits/CUSTOM_FOO", None),
    ("PUT", f"/allocations/{CONSUMER}", _ALLOCATION_BODY),
    ("POST", "/scheduler/server_groups", {"uuid": GROUP, "policy": "anti-affinity"}),
]


def json_with_poison(value: Any) -> bytes:
    """Serialise a value whose leaves may be raw byte tokens (put in as they are)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        return b"[" + b",".join(json_with_poison(v) for v in value) + b"]"
    if isinstance(value, dict):
        items = (json.dumps(k).encode() + b":" + json_with_poison(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    return json.dumps(value).encode()


def nested(depth: int, kind: str) -> bytes:
    """``[[...]]`` or ``{"a":{"a":...}}`` ``depth`` levels deep."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def slot_paths(shape: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where the slots of ``shape`` are (keys and list indexes)."""
    if isinstance(shape, S):
        yield at
    elif isinstance(shape, dict):
        for key, value in shape.items():
            yield from slot_paths(value, (*at, key))
    elif isinstance(shape, list):
        for i, value in enumerate(shape):
            yield from slot_paths(value, (*at, i))


def good_but(shape: Any, at: tuple[Any, ...] | None, poison: bytes) -> Any:
    """``shape`` with its good values, and ``poison`` in the slot at ``at`` (None: nowhere)."""
    if isinstance(shape, S):
        return poison if at == () else shape.good
    head, rest = (at[0], at[1:]) if at else (None, None)
    if isinstance(shape, dict):
        return {k: good_but(v, rest if k == head else None, poison) for k, v in shape.items()}
    if isinstance(shape, list):
        return [good_but(v, rest if i == head else None, poison) for i, v in enumerate(shape)]
    return shape


def fill_path(template: str, values: list[str | None]) -> str:
    """The template filled: a real value for None, an undecodable %-escape as is, else quoted."""
    path = template
    for name, value in zip(re.findall(r"{(\w+)}", template), values, strict=False):
        if value is None:
            raw = REAL.get(name, RP_UUID)
        elif value in BAD_UTF8:
            raw = value
        else:
            raw = quote(value, safe="") or "x"
        path = path.replace("{" + name + "}", raw)
    return path
