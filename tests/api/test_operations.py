"""Health checks and metrics."""

from __future__ import annotations

import uuid

import falcon.testing

from berth.api.routes import ROUTES
from berth.metrics import HTTP_METHODS, LATENCY, REQUESTS


def test_liveness_needs_no_token(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/healthcheck", headers={"x-auth-token": ""})
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_readiness_checks_database_and_schema(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/healthcheck/ready")
    assert result.status_code == 200
    assert result.json["status"] == "ok"
    assert result.json["database"] == "sqlite"


def test_metrics_count_requests_by_route(client: falcon.testing.TestClient) -> None:
    client.simulate_get("/resource_providers")
    client.simulate_get("/resource_providers/nope")
    text = client.simulate_get("/metrics").text
    assert (
        'berth_http_requests_total{method="GET",route="/resource_providers",status="200"}' in text
    )
    assert 'route="/resource_providers/{uuid}",status="404"' in text
    assert "berth_http_request_duration_seconds_bucket" in text


def test_metric_labels_never_carry_what_the_client_sent(
    client: falcon.testing.TestClient,
) -> None:
    """Route templates, known methods, status codes: made-up paths and methods add no series."""
    junk = f"/resource_providers/{uuid.uuid4()}/nope-{uuid.uuid4()}"
    client.simulate_get(junk)
    for method in ("BREW", "get", "X-" + uuid.uuid4().hex):
        client.simulate_request(method, "/resource_providers")
    labels = [s.labels for m in (REQUESTS, LATENCY) for s in m.collect()[0].samples]
    assert {lb["method"] for lb in labels} <= HTTP_METHODS | {"other"}
    assert {lb["route"] for lb in labels} <= set(ROUTES) | {"unmatched"}
    assert any(lb["method"] == "other" for lb in labels)
