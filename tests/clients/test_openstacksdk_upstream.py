"""openstacksdk's own placement functional tests, run unchanged against berth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .upstream import run_upstream_suite

pytest.importorskip("openstack", reason="openstacksdk is not installed")
pytest.importorskip("oslotest", reason="oslotest (used by openstacksdk's tests) is not installed")

CLOUDS = ("devstack", "devstack-alt", "devstack-admin", "devstack-system-admin")


@pytest.mark.slow
def test_upstream_placement_functional_tests(tmp_path: Path) -> None:
    """All of openstacksdk's placement functional tests pass."""
    import openstack

    upstream = Path(openstack.__file__).parent / "tests" / "functional" / "placement"
    if not upstream.is_dir():
        pytest.skip(f"openstacksdk ships no placement functional tests at {upstream}")

    def clouds(url: str) -> dict[str, str]:
        cloud = {
            "auth_type": "admin_token",
            "auth": {"endpoint": url, "token": "admin"},
            "placement_endpoint_override": url,
        }
        path = tmp_path / "clouds.yaml"  # JSON is YAML
        path.write_text(json.dumps({"clouds": {name: cloud for name in CLOUDS}}))
        return {"OS_CLIENT_CONFIG_FILE": str(path)}

    warnings = ["-W", "ignore::DeprecationWarning", "-W", "ignore::PendingDeprecationWarning"]
    run_upstream_suite(upstream, "sdk_upstream_plugin", tmp_path, clouds, warnings, timeout=600)
