"""docs/scheduler.md documents every option of ``berth host report``, and no other."""

from __future__ import annotations

import re

import typer.main

from berth.cli import app
from tests.server import ROOT


def test_every_report_option_is_documented() -> None:
    host = typer.main.get_command(app).commands["host"]  # type: ignore[attr-defined]
    command = host.commands["report"]
    options = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    options.discard("--help")
    text = (ROOT / "docs" / "scheduler.md").read_text()
    table = text[text.index("##### `berth host report` options") :]
    table = table[: table.index("\n#")]
    documented = set(re.findall(r"\| `(--[a-z-]+)`", table))
    assert options - documented == set(), "options missing from docs/scheduler.md"
    assert documented - options == set(), "docs/scheduler.md names options that do not exist"
    assert all(param.help for param in command.params), "an option without help text"
