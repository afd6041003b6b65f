"""docs/pull.md documents every option of ``berth agent``, and no option that is not one."""

from __future__ import annotations

import re

import typer.main

from berth.cli import app
from tests.server import ROOT


def test_every_agent_option_is_documented() -> None:
    command = typer.main.get_command(app).commands["agent"]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    options.discard("--help")
    text = (ROOT / "docs" / "pull.md").read_text()
    table = text[text.index("### `berth agent` options") :]
    table = table[: table.index("\n#")]
    documented = set(re.findall(r"`(--[a-z-]+)", table))
    assert options - documented == set(), "options missing from docs/pull.md"
    assert documented - options == set(), "docs/pull.md names options that do not exist"
