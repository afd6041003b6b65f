"""Health checks and metrics."""

from __future__ import annotations

import falcon.testing


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
