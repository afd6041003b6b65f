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
at the end.  Both happen in the workers (where xdist collects; the
controller collects nothing): the groups before xdist reads them, the order
after pytest's own reordering (tests/conftest.py).

pytest-xdist 3.8 hands a test's group to its scheduler as a ``@group`` suffix
that it appends to ``item._nodeid``; pytest 9.2 keeps node ids in
``item._id`` and no longer reads ``_nodeid``, so every group was silently
split over the workers (each worker started its own Galera cluster and
conformance servers; pytest-xdist issue 1386).  :func:`assign` appends the
suffix to the structured id itself where pytest has one.  The scheduler takes
the text after the last ``@`` for the group, and none when a ``]`` follows
it, so a group name has neither character.
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
# Handed out first, in this order: the Galera cluster (minutes to start, then its
# races), the fault tests' private servers, the serial tests; then the modules of LONG,
# in its order (each of their groups takes minutes); then whatever is marked slow; then
# the rest, which fills the workers' last minutes.
FIRST = ("galera", "private-db", SERIAL)
LONG = (
    "tests/conformance/test_conformance.py",
    "tests/candidates/test_properties.py",
    "tests/clients/test_osc_placement_upstream.py",
)
SHARED_SCOPES = ("module", "class", "package")


def _label(value: object) -> str:
    text = "-".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
    return text.replace("@", "_").replace("[", "(").replace("]", ")")


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
    return module + "".join(f":{s}" for s in split)


def _rank(group: str | None, items: list[pytest.Item]) -> int:
    if group in FIRST:
        return FIRST.index(group)
    module = items[0].nodeid.split("::", 1)[0]
    if module in LONG:
        return len(FIRST) + LONG.index(module)
    if any(i.get_closest_marker("slow") is not None for i in items):
        return len(FIRST) + len(LONG)
    return len(FIRST) + len(LONG) + 1


def assign(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests with their ``xdist_group`` (unless they name their own); under
    ``--dist loadgroup``, tag their node ids with it (see the module's docstring)."""
    loadgroup = bool(getattr(config.option, "loadgroup", False))
    for item in items:
        group = _group_name(item)
        if group is None:
            group = group_of(item)
            if group is None:
                continue
            item.add_marker(pytest.mark.xdist_group(group))
        if loadgroup:
            _tag(item, group)


def _tag(item: pytest.Item, group: str) -> None:
    """Append ``@group`` to a structured node id (pytest >= 9.2), as pytest-xdist did
    to the string one; older pytest: xdist does it."""
    node_id = getattr(item, "_id", None)
    suffix = f"@{group}"
    if node_id is None or str(node_id).endswith(suffix):
        return
    item._id = type(node_id).parse(str(node_id) + suffix)  # type: ignore[attr-defined]


def _group_name(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def order(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker, order the items longest group first; a serial run
    keeps pytest's own order.

    The sort is stable, so the order pytest gave holds within each group.
    """
    if not hasattr(config, "workerinput"):
        return
    members: dict[str, list[pytest.Item]] = {}
    keys: dict[int, str] = {}
    for item in items:
        group = _group_name(item)
        key = group if group is not None else "@" + item.nodeid
        keys[id(item)] = key
        members.setdefault(key, []).append(item)
    ranks = {key: _rank(None if key[0] == "@" else key, its) for key, its in members.items()}
    items.sort(key=lambda item: ranks[keys[id(item)]])
