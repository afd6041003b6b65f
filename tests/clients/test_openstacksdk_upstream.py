"""openstacksdk's own placement functional tests, run unchanged against berth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from server import running_berth

pytest.importorskip("openstack", reason="openstacksdk is not installed")
pytest.importorskip("oslotest", reason="oslotest (used by openstacksdk's tests) is not installed")

HERE = Path(__file__).resolve().parent
CLOUDS = ("devstack", "devstack-alt", "devstack-admin", "devstack-system-admin")


@pytest.mark.slow
def test_upstream_placement_functional_tests(tmp_path: Path) -> None:
    """All of openstacksdk's placement functional tests pass."""
    import openstack

    upstream = Path(openstack.__file__).parent / "tests" / "functional" / "placement"
    if not upstream.is_dir():
        pytest.skip(f"openstacksdk ships no placement functional tests at {upstream}")
    with running_berth(env={"BERTH_LOG_REQUESTS": "false"}) as url:
        cloud = {
            "auth_type": "admin_token",
            "auth": {"endpoint": url, "token": "admin"},
            "placement_endpoint_override": url,
        }
        clouds = tmp_path / "clouds.yaml"  # JSON is YAML
        clouds.write_text(json.dumps({"clouds": {name: cloud for name in CLOUDS}}))
        env = {
            **os.environ,
            "BERTH_URL": url,
            "OS_CLIENT_CONFIG_FILE": str(clouds),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "sdk_upstream_plugin", "--rootdir", str(tmp_path), "-c", os.devnull,
             "-W", "ignore::DeprecationWarning", "-W", "ignore::PendingDeprecationWarning",
             str(upstream)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
