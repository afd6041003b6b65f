"""pytest plugin: osc-placement's own functional tests against a running berth.

Upstream runs them against an in-process Placement (``PlacementFixture``, one
fresh database per test).  This plugin replaces that fixture with one that
points the tests at ``BERTH_URL`` and empties berth through its API before
each test.  Loaded by ``test_osc_placement_upstream.py`` in a child pytest.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import fixtures

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "conformance"))

from fixtures_http import PlacementClient


class BerthPlacement(fixtures.Fixture):  # type: ignore[misc]
    """Stands in for placement.tests.functional.fixtures.placement.PlacementFixture."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()

    def _setUp(self) -> None:
        self.endpoint = os.environ["BERTH_URL"]
        self.token = "admin"
        client = PlacementClient(self.endpoint)
        try:
            client.reset()
        finally:
            client.close()


_module = types.ModuleType("placement.tests.functional.fixtures.placement")
_module.PlacementFixture = BerthPlacement  # type: ignore[attr-defined]
sys.modules[_module.__name__] = _module
import placement.tests.functional.fixtures as _package  # noqa: E402

_package.placement = _module  # type: ignore[attr-defined]
