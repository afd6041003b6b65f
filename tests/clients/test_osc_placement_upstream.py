"""osc-placement's own functional test suite, run unchanged against berth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from server import running_berth

pytest.importorskip("oslotest", reason="oslotest (used by osc-placement's tests) is not installed")
osc_placement = pytest.importorskip("osc_placement")

HERE = Path(__file__).resolve().parent
UPSTREAM = Path(osc_placement.__file__).parent / "tests" / "functional"


@pytest.mark.slow
def test_upstream_functional_suite(tmp_path: Path) -> None:
    """Every upstream functional test passes (each starts from an empty berth)."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"osc-placement ships no functional tests at {UPSTREAM}")
    with running_berth(env={"BERTH_LOG_REQUESTS": "false"}) as url:
        env = {
            **os.environ,
            "BERTH_URL": url,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            # test_plugin.py runs the ``openstack`` script itself.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        }
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "osc_upstream_plugin", "--rootdir", str(tmp_path), "-c", os.devnull,
             "--import-mode=importlib", "-W", "ignore::DeprecationWarning", str(UPSTREAM)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1800,
        )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
