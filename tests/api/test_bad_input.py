"""Property test: malformed requests never cause a 5xx, and rejected writes change nothing.

Hypothesis sends random and malformed bodies, headers, query strings, path
parameters (UUIDs and not) and microversions to every route of the table.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import falcon.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from berth.api.routes import ROUTES
from berth.db import tables

WRITES = {"POST", "PUT", "DELETE", "PATCH"}
RP_UUID = "5a8a9f17-5e5a-4c31-9a6f-0c2b5f2f7a10"
CONSUMER = "9b2c5c4e-7b1a-4a6e-8d0a-3c1e7c2f0b11"
TEMPLATES = sorted(ROUTES)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)

# Bodies shaped like the real ones, with wrong pieces in them.
plausible_keys = st.sampled_from(
    [
        "name",
        "uuid",
        "parent_provider_uuid",
        "inventories",
        "resource_provider_generation",
        "total",
        "reserved",
        "allocation_ratio",
        "min_unit",
        "max_unit",
        "step_size",
        "allocations",
        "resources",
        "project_id",
        "user_id",
        "consumer_generation",
        "consumer_type",
        "traits",
        "aggregates",
        "mappings",
        "VCPU",
        RP_UUID,
        CONSUMER,
    ]
)
plausible_bodies = st.recursive(
    json_values,
    lambda inner: st.dictionaries(plausible_keys, inner, max_size=5),
    max_leaves=15,
)

path_values = st.one_of(
    st.just(RP_UUID),
    st.just(CONSUMER),
    st.builds(lambda: str(uuid.uuid4())),
    st.sampled_from(["VCPU", "CUSTOM_FOO", "HW_CPU_X86_AVX", "cows", "", "..", "CUSTOM_"]),
    st.text(min_size=1, max_size=40),
)

versions = st.one_of(
    st.builds(lambda m: f"placement 1.{m}", st.integers(0, 45)),
    st.sampled_from(["placement latest", "placement 2.0", "placement 1.x", "compute 1.5", ""]),
    st.text(max_size=20),
)

query = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "uuid",
            "member_of",
            "resources",
            "in_tree",
            "required",
            "project_id",
            "user_id",
            "consumer_type",
            "associated",
            "limit",
            "group_policy",
            "x",
        ]
    ),
    st.one_of(st.text(max_size=30), st.just(RP_UUID), st.just("in:" + RP_UUID), st.just("VCPU:1")),
    max_size=3,
)


def _fill(template: str, values: list[str]) -> str:
    names = re.findall(r"{(\w+)}", template)
    path = template
    for name, value in zip(names, values, strict=False):
        path = path.replace("{" + name + "}", quote(value, safe="") or "x")
    return path


def _snapshot(client: falcon.testing.TestClient) -> dict[str, list[Any]]:
    services = _services(client)
    with services.db.read() as conn:
        return {
            table.name: sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
            for table in tables.metadata.sorted_tables
        }


def _services(client: falcon.testing.TestClient) -> Any:
    for mw in client.app._unprepared_middleware:  # RequestSetup holds the services
        if hasattr(mw, "services"):
            return mw.services
    raise AssertionError("no services middleware")


def _seed(client: falcon.testing.TestClient) -> None:
    h = {"openstack-api-version": "placement latest"}
    client.simulate_post("/resource_providers", json={"name": "rp", "uuid": RP_UUID}, headers=h)
    client.simulate_put(
        f"/resource_providers/{RP_UUID}/inventories",
        json={"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}},
        headers=h,
    )
    client.simulate_put("/traits/CUSTOM_FOO", headers=h)
    client.simulate_put(
        f"/allocations/{CONSUMER}",
        json={
            "allocations": {RP_UUID: {"resources": {"VCPU": 1}}},
            "project_id": "p",
            "user_id": "u",
            "consumer_generation": None,
            "consumer_type": "INSTANCE",
        },
        headers=h,
    )


request_parts = st.tuples(
    st.sampled_from(TEMPLATES),
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    st.lists(path_values, min_size=2, max_size=2),
    versions,
    query,
    st.one_of(plausible_bodies.map(lambda b: json.dumps(b).encode()), st.binary(max_size=60)),
    st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8"]),
    st.sampled_from(["admin", "user", "user:project", None]),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(parts=request_parts)
def test_no_5xx_and_rejected_writes_change_nothing(
    client: falcon.testing.TestClient, parts: tuple[Any, ...]
) -> None:
    """Whatever arrives, the answer is < 500; a 4xx write leaves the database as it was."""
    if not getattr(client, "_seeded", False):
        _seed(client)
        client._seeded = True  # type: ignore[attr-defined]
    template, method, values, version, params, body, ctype, token = parts
    headers = {"openstack-api-version": version}
    if ctype:
        headers["content-type"] = ctype
    if token is not None:
        headers["x-auth-token"] = token
    before = _snapshot(client) if method in WRITES else None
    result = client.simulate_request(
        method,
        _fill(template, values),
        query_string=urlencode(params),
        headers=headers,
        body=body if method in ("POST", "PUT", "PATCH") else None,
    )
    assert result.status_code < 500, (result.status_code, result.text)
    if before is not None and result.status_code >= 400:
        assert _snapshot(client) == before
