"""osc-placement's own functional test suite, run unchanged against berth."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .upstream import run_upstream_suite

pytest.importorskip("oslotest", reason="oslotest (used by osc-placement's tests) is not installed")
osc_placement = pytest.importorskip("osc_placement")

UPSTREAM = Path(osc_placement.__file__).parent / "tests" / "functional"


def _path(url: str) -> dict[str, str]:
    # test_plugin.py runs the ``openstack`` script itself.
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}


@pytest.mark.slow
def test_upstream_functional_suite(tmp_path: Path) -> None:
    """Every upstream functional test passes (each starts from an empty berth)."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"osc-placement ships no functional tests at {UPSTREAM}")
    options = ["--import-mode=importlib", "-W", "ignore::DeprecationWarning"]
    run_upstream_suite(UPSTREAM, "osc_upstream_plugin", tmp_path, _path, options, timeout=1800)
