"""Writes to one provider: a missing provider is 404 whatever the body, as the reference."""

from __future__ import annotations

import uuid

import falcon.testing
import pytest

HEADERS = {"openstack-api-version": "placement 1.39", "content-type": "application/json"}
MISSING = "No resource provider with uuid {uuid} found"

# (path under the provider, a body valid for it, a body its schema refuses)
WRITES = [
    (
        "/inventories",
        {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}},
        {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": "eight"}}},
    ),
    (
        "/inventories/VCPU",
        {"resource_provider_generation": 0, "total": 8},
        {"resource_provider_generation": 0},
    ),
    (
        "/aggregates",
        {"resource_provider_generation": 0, "aggregates": [str(uuid.uuid4())]},
        {"aggregates": []},
    ),
    ("", {"name": "renamed"}, {"name": 7}),
]


@pytest.mark.parametrize(("path", "valid", "refused"), WRITES, ids=lambda v: str(v)[:20])
@pytest.mark.parametrize("which", ["valid", "refused", "not json"])
def test_missing_provider_is_404_before_the_body(
    any_client: falcon.testing.TestClient,
    path: str,
    valid: object,
    refused: object,
    which: str,
) -> None:
    provider = str(uuid.uuid4())
    kwargs: dict[str, object] = {"json": valid} if which == "valid" else {"json": refused}
    if which == "not json":
        kwargs = {"body": b"{not json"}
    result = any_client.simulate_put(
        f"/resource_providers/{provider}{path}", headers=HEADERS, **kwargs
    )
    assert result.status_code == 404
    assert MISSING.format(uuid=provider) in result.text


@pytest.mark.parametrize(("path", "valid", "refused"), WRITES, ids=lambda v: str(v)[:20])
def test_existing_provider_with_a_refused_body_is_400(
    client: falcon.testing.TestClient, path: str, valid: object, refused: object
) -> None:
    provider = str(uuid.uuid4())
    created = client.simulate_post(
        "/resource_providers", headers=HEADERS, json={"name": "p", "uuid": provider}
    )
    assert created.status_code == 200
    result = client.simulate_put(
        f"/resource_providers/{provider}{path}", headers=HEADERS, json=refused
    )
    assert result.status_code == 400
