"""Every `berth bench` command the docs and the run script show parses (no doc rot)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from berth.cli import app

ROOT = Path(__file__).resolve().parent.parent.parent
NAMES = (
    "populate|candidates|claims|fill|register|compute-claims|workers|report|reference|fuzz|pull"
    "|cost|hosts|hoststate|host-updates"
)
PATTERN = re.compile(rf"(?:berth bench|^\s*b) ((?:{NAMES})\b.*)")
SOURCES = [ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "bench" / "run-all.sh"]


def _commands() -> list[str]:
    found = []
    for path in SOURCES:
        text = path.read_text().replace("\\\n", " ")
        if path.suffix == ".md":  # only the fenced code blocks
            text = "\n".join(re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL))
        for line in text.splitlines():
            match = PATTERN.search(line)
            if match:
                found.append(match.group(1).split("#")[0].split(";")[0].strip())
    return found


@pytest.mark.parametrize("command", _commands())
def test_command_parses(command: str) -> None:
    words = [w if not w.startswith("$") else "100" for w in shlex.split(command)]
    group: Any = typer.main.get_command(app)
    ctx = group.make_context("berth", ["bench", *words])
    node = group.get_command(ctx, "bench")
    while hasattr(node, "get_command"):  # a group: go down to the subcommand
        node, words = node.get_command(ctx, words[0]), words[1:]
        assert node is not None, command
    node.make_context("bench", words)  # raises on an unknown option or a bad value


def test_the_docs_show_commands() -> None:
    assert len(_commands()) > 20
