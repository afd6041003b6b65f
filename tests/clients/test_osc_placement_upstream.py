"""osc-placement's own functional test suite, run unchanged against berth.

One test per upstream module, so that the workers of a parallel run share the
modules out (the whole suite in one test was the suite's longest).  The
modules a worker runs share one berth: upstream's fixture (replaced by
tests/clients/osc_upstream_plugin.py) empties it before every test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from server import running_berth

from .upstream import UPSTREAM_ENV, run_upstream_suite

pytest.importorskip("oslotest", reason="oslotest (used by osc-placement's tests) is not installed")
osc_placement = pytest.importorskip("osc_placement")

UPSTREAM = Path(osc_placement.__file__).parent / "tests" / "functional"
# Upstream's modules; one placeholder (which skips) when the package ships none.
MODULES = sorted(p.name for p in UPSTREAM.glob("test_*.py")) or ["test_*.py"]


@pytest.fixture(scope="session")
def osc_upstream_berth() -> Iterator[str]:
    """The berth this worker's upstream modules run against."""
    with running_berth(env=UPSTREAM_ENV) as url:
        yield url


def _path(url: str) -> dict[str, str]:
    # test_plugin.py runs the ``openstack`` script itself.
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_upstream_functional_suite(tmp_path: Path, module: str, osc_upstream_berth: str) -> None:
    """Every upstream functional test of ``module`` passes (each starts from an empty berth)."""
    if not (UPSTREAM / module).is_file():
        pytest.skip(f"osc-placement ships no functional tests at {UPSTREAM}")
    options = ["--import-mode=importlib", "-W", "ignore::DeprecationWarning"]
    suite, plugin = UPSTREAM / module, "osc_upstream_plugin"
    run_upstream_suite(suite, plugin, tmp_path, _path, options, 900, osc_upstream_berth)
