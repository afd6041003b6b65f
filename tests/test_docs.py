"""The operator docs keep up with the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from berth.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    """docs/configuration.md has a row for each field of Settings, and no stale ones."""
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `(BERTH_[A-Z_]+)`", text, flags=re.MULTILINE))
    fields = {f"BERTH_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert fields - documented == set(), "settings missing from docs/configuration.md"
    assert documented - fields == {"BERTH_CONFIG"}, "docs name settings that do not exist"


def test_documented_metrics_exist() -> None:
    """Every metric named in docs/operations.md is one berth exports."""
    import prometheus_client

    import berth.metrics  # noqa: F401  (registers the metrics)

    exported = set()
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    for metric in prometheus_client.REGISTRY.collect():
        exported.update(metric.name + suffix for suffix in suffixes)
    text = (DOCS / "operations.md").read_text()
    named = set(re.findall(r"`(berth_[a-z_]+)`", text))
    assert named, "operations.md names no metric"
    # The scheduler registers its own metrics when it is imported.
    core = {n for n in named if not n.startswith("berth_scheduler_")}
    assert core - exported == set()
