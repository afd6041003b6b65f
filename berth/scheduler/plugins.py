"""Filters and weighers of other projects: Python entry points, found once per process.

A distribution registers a filter under the entry-point group
``berth.scheduler.filters`` and a weigher under ``berth.scheduler.weighers``
(``[project.entry-points."berth.scheduler.filters"] my_filter =
"my_package.module:MyFilter"``); the entry point's name is the name the
``scheduler_filters`` / ``scheduler_weighers`` settings use.  Its object is
a factory taking no argument (usually the class itself) that makes a
:class:`~berth.scheduler.filters.Filter` (or
:class:`~berth.scheduler.weighers.Weigher`) whose ``name`` is the entry
point's.  A plugin may not take a built-in's name.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from typing import Any

FILTER_GROUP = "berth.scheduler.filters"
WEIGHER_GROUP = "berth.scheduler.weighers"


def load(group: str, built_in: Mapping[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """The built-in factories and those the installed distributions register under ``group``
    (ValueError for one that cannot be loaded or takes a built-in's name)."""
    found = dict(built_in)
    for entry in importlib.metadata.entry_points(group=group):
        where = f"entry point {entry.name} = {entry.value} ({group})"
        if entry.name in built_in:
            raise ValueError(f"{where}: {entry.name} is a built-in name")
        try:
            factory = entry.load()
        except Exception as exc:  # any import error of a third-party module: say which
            raise ValueError(f"{where}: cannot be loaded: {exc}") from exc
        if not callable(factory):
            raise ValueError(f"{where}: not a class or factory")
        found[entry.name] = factory
    return found


def make(name: str, factory: Callable[[], Any], kind: type, setting: str) -> Any:
    """``factory()``, checked to be a ``kind`` named ``name`` (ValueError naming ``setting``)."""
    made = factory()
    if not isinstance(made, kind) or getattr(made, "name", None) != name:
        raise ValueError(f"{setting}: {name} made {made!r}, not a {kind.__name__} named {name!r}")
    return made
