"""One structured log line per request, with the request id and the caller."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from server import running_berth

from berth.api import requestlog


class Recorder:
    """Stands in for the structlog logger; keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str, dict[str, Any]]] = []

    def log(self, level: int, event: str, **fields: Any) -> None:
        self.lines.append((level, event, fields))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(requestlog, "log", rec)
    return rec


CASES = [
    # (method, path, headers, status, route, user, project, level)
    ("GET", "/resource_providers", {}, 200, "/resource_providers", "admin", "admin", logging.INFO),
    ("GET", "/resource_providers", {"x-auth-token": "alice:p1"}, 403, "/resource_providers",
     "alice", "p1", logging.INFO),
    # Refused before routing: the route is not known yet (the path is logged).
    ("GET", "/resource_providers", {"x-auth-token": None}, 401, "unmatched",
     None, None, logging.INFO),
    ("GET", "/nowhere", {}, 404, "unmatched", "admin", "admin", logging.INFO),
    ("GET", "/traits/HW_CPU_X86_AVX", {"openstack-api-version": "placement 1.6"}, 204,
     "/traits/{name}", "admin", "admin", logging.INFO),
    ("GET", "/healthcheck", {}, 200, "/healthcheck", None, None, logging.DEBUG),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "headers", "status", "route", "user", "project",
                          "level"), CASES)  # fmt: skip
def test_one_line_per_request(
    client: falcon.testing.TestClient,
    recorder: Recorder,
    method: str,
    path: str,
    headers: dict[str, str | None],
    status: int,
    route: str,
    user: str | None,
    project: str | None,
    level: int,
) -> None:
    """Every answered request, errors included, logs exactly one line."""
    sent = {k: v for k, v in headers.items() if v is not None}
    if headers.get("x-auth-token", "") is None:
        client._default_headers = {}  # this request carries no token
    result = client.simulate_request(method, path, headers=sent)
    assert result.status_code == status
    assert len(recorder.lines) == 1
    got_level, event, fields = recorder.lines[0]
    assert (got_level, event) == (level, "request")
    assert fields["method"] == method and fields["path"] == path
    assert (fields["route"], fields["status"]) == (route, status)
    assert (fields["user_id"], fields["project_id"]) == (user, project)
    assert fields["request_id"] == result.headers["x-openstack-request-id"]
    assert fields["duration_ms"] >= 0


def test_global_request_id_and_query(client: falcon.testing.TestClient, recorder: Recorder) -> None:
    """A caller's own request id and the query string are logged too."""
    client.simulate_get(
        "/resource_providers",
        query_string="name=x",
        headers={"x-openstack-request-id": "req-nova-1", "openstack-api-version": "placement 1.14"},
    )
    fields = recorder.lines[0][2]
    assert fields["global_request_id"] == "req-nova-1"
    assert fields["query"] == "name=x"
    assert fields["microversion"] == "1.14"


def test_json_lines_from_workers(tmp_path: Path) -> None:
    """A real server writes the line as JSON, findable by the response's request id."""
    log_path = tmp_path / "server.log"
    with running_berth(env={"BERTH_LOG_LEVEL": "INFO"}, log_path=str(log_path)) as url:
        headers = {"x-auth-token": "admin", "openstack-api-version": "placement 1.2"}
        request = urllib.request.Request(url + "/resource_classes/VCPU", headers=headers)
        with urllib.request.urlopen(request) as answer:
            request_id = answer.headers["x-openstack-request-id"]
    lines = []
    for raw in log_path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue  # gunicorn's own lines
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert len(mine) == 1, lines
    line = mine[0]
    assert line["event"] == "request" and line["level"] == "info"
    assert (line["method"], line["route"], line["status"]) == (
        "GET",
        "/resource_classes/{name}",
        200,
    )
    assert (line["user_id"], line["project_id"]) == ("admin", "admin")
    assert "timestamp" in line
