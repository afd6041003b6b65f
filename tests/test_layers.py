"""Layering: only the API edge knows HTTP (Falcon) and ``berth.api``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Everything below the edge that the API, the CLI and the scheduler use.
BELOW_THE_EDGE = (
    "berth.scheduler",
    "berth.candidates",
    "berth.candidates.service",
    "berth.placement",
    "berth.policy",
    "berth.qparams",
    "berth.services",
)


def _loaded_after_import(modules: tuple[str, ...], prefix: str) -> list[str]:
    """The modules named ``prefix``* that importing ``modules`` loads, in a fresh interpreter."""
    wanted = f"m == {prefix!r} or m.startswith({prefix!r} + '.')"
    code = f"import sys, {', '.join(modules)}\nprint(*(m for m in sys.modules if {wanted}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.parametrize("prefix", ["falcon", "berth.api"])
def test_the_scheduler_and_the_domain_do_not_load_the_edge(prefix: str) -> None:
    assert _loaded_after_import(BELOW_THE_EDGE, prefix) == []


def test_the_app_does_load_falcon() -> None:
    """The check above can see an import (it would pass vacuously otherwise)."""
    assert "falcon" in _loaded_after_import(("berth.api.app",), "falcon")
