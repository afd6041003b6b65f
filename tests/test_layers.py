"""Layering: only the API edge knows HTTP (Falcon) and ``berth.api``."""

from __future__ import annotations

import ast
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
    "berth.pull",
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


@pytest.mark.parametrize("prefix", ["falcon", "berth.api", "berth.db", "sqlalchemy"])
def test_the_agent_loads_nothing_of_the_server(prefix: str) -> None:
    """``berth agent`` runs on hosts without the server's code paths (or a database driver)."""
    assert _loaded_after_import(("berth.agent.runner", "berth.agent.cli"), prefix) == []


@pytest.mark.parametrize("prefix", ["falcon", "berth.api", "berth.db", "sqlalchemy", "berth.agent"])
def test_the_reporter_loads_nothing_of_the_server(prefix: str) -> None:
    """``berth host report`` runs on compute hosts: none of the server (nor the agent)."""
    assert _loaded_after_import(("berth.reporter.runner", "berth.reporter.cli"), prefix) == []


@pytest.mark.parametrize("prefix", ["falcon", "berth.api"])
def test_the_scheduler_and_the_domain_do_not_load_the_edge(prefix: str) -> None:
    assert _loaded_after_import(BELOW_THE_EDGE, prefix) == []


def test_the_app_does_load_falcon() -> None:
    """The check above can see an import (it would pass vacuously otherwise)."""
    assert "falcon" in _loaded_after_import(("berth.api.app",), "falcon")


# What each package may import from berth, besides itself (docs/architecture.md).
ALLOWED = {
    "db": {"db"},
    "sync": {"db"},
    "placement": {"db", "metrics"},
    "candidates": {"db", "placement", "sync", "qparams", "schemas", "services"},
    "scheduler": {"db", "placement", "candidates", "sync", "settings", "metrics", "services"},
    # The host agent is a client of berth's HTTP API and NATS: none of the server's internals.
    "agent": {"logging", "settings"},
    # So is the host-state reporter (``berth host report``).
    "reporter": {"logging", "settings"},
    "pull": {"db", "placement", "scheduler", "settings", "metrics", "services"},
}


def _berth_imports(package: str) -> dict[str, set[str]]:
    """Module path -> the top-level berth packages it imports (any depth, any place)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "berth" / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "berth":
                    names |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("berth.")}
        found[str(path.relative_to(ROOT))] = names - {package}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_the_layers(package: str) -> None:
    wrong = {
        path: sorted(names - ALLOWED[package])
        for path, names in _berth_imports(package).items()
        if names - ALLOWED[package]
    }
    assert wrong == {}
