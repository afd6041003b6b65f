"""Which tests share a pytest-xdist worker when ``make test`` runs the suite in parallel.

``make test`` runs ``pytest -n 4 --dist loadgroup --no-loadscope-reorder``:
xdist sends every test of one group to the same worker, and a test without
a group to any worker.  :func:`assign` gives the tests their groups:

* tests of the session-scoped servers that are costly to start (the Galera
  cluster, the private PostgreSQL and MariaDB of the fault tests, the two
  servers of the client tests) share one worker, so each starts once;
* tests marked ``serial`` (their timing would suffer from each other) share
  one group, so at most one of them runs at a time;
* tests of a module with a module- or class-scoped fixture stay together (the
  fixture is made once, in the serial order), split by the fixture's
  parameter where it has one (the conformance servers, one per profile and
  database; the property tests' database per backend);
* every other test (function-scoped fixtures only) goes wherever a worker is
  free.

xdist hands out work in the order it meets it, so the items are ordered
longest first: a long group started last would leave the other workers idle
at the end.
"""

from __future__ import annotations

import pytest

SERIAL = "serial"
# Session-scoped fixtures whose tests share one worker, and that worker's group.
SESSION_GROUPS = {
    "galera": "galera",
    "private_server": "private-db",
    "private_postgres": "private-db",
    "private_mariadb": "private-db",
    "berth_noauth2": "clients",
    "berth_admin_token": "clients",
}
# Handed out first, in this order: the Galera cluster (minutes to start), the fault
# tests' private servers, the serial tests; then whatever is marked slow or is listed
# in LONG; then the rest.
FIRST = ("galera", "private-db", SERIAL)
LONG = ("tests/candidates/test_properties.py",)
SHARED_SCOPES = ("module", "class", "package")


def _label(value: object) -> str:
    if isinstance(value, tuple | list):
        return "-".join(str(v) for v in value)
    return str(value)


def group_of(item: pytest.Item) -> str | None:
    """The xdist group of one test, None for one that may run anywhere."""
    if item.get_closest_marker("serial") is not None:
        return SERIAL
    names = list(getattr(item, "fixturenames", ()))
    for fixture, group in SESSION_GROUPS.items():
        if fixture in names:
            return group
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    spec = getattr(item, "callspec", None)
    module = item.nodeid.split("::", 1)[0]
    shared, split = False, []
    for name in names:
        defs = info.name2fixturedefs.get(name)
        if not defs or defs[-1].scope not in SHARED_SCOPES:
            continue
        shared = True
        if spec is not None and name in spec.params:
            split.append(_label(spec.params[name]))
    if not shared:
        return None
    return module + "".join(f"[{s}]" for s in split)


def _rank(group: str | None, items: list[pytest.Item]) -> int:
    if group in FIRST:
        return FIRST.index(group)
    module = items[0].nodeid.split("::", 1)[0]
    if module in LONG or any(i.get_closest_marker("slow") is not None for i in items):
        return len(FIRST)
    return len(FIRST) + 1


def assign(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests with their ``xdist_group`` (unless they name their own); under
    xdist (``-n``), order them longest first.

    The sort is stable, so the serial order holds within each group; a serial
    run (no ``-n``) keeps pytest's own order.
    """
    members: dict[str, list[pytest.Item]] = {}
    keys: dict[str, str] = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            group = group_of(item)
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
        else:
            group = str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        key = group if group is not None else "@" + item.nodeid
        keys[item.nodeid] = key
        members.setdefault(key, []).append(item)
    if config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None):
        ranks = {key: _rank(None if key[0] == "@" else key, its) for key, its in members.items()}
        items.sort(key=lambda item: ranks[keys[item.nodeid]])
