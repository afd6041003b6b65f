"""Third-party filters and weighers, found through entry points, run in the pipeline.

The distribution in ``plugin_dist/`` is installed as pip would leave it: its
module and a ``<name>-<version>.dist-info`` directory (``METADATA``,
``entry_points.txt`` written from its ``pyproject.toml``) in a directory put
on ``sys.path``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.db.engine import Database
from berth.placement.write.retry import atomically
from berth.scheduler import (
    RequestSpec,
    filters,
    plugins,
    select_destinations,
    state_store,
    weighers,
)
from berth.scheduler.config import from_settings
from berth.settings import Settings
from tests.scheduler.conftest import MakeServices, host_uuid, write_cloud
from tests.scheduler.helpers import RULES

DIST = Path(__file__).parent / "plugin_dist"
MODULE = "berth_example_plugin"


def _forget_plugins() -> None:
    filters.registry.cache_clear()
    weighers.registry.cache_clear()
    from_settings.cache_clear()
    sys.modules.pop(MODULE, None)


def install(target: Path) -> None:
    """Write ``plugin_dist`` into ``target`` as an installed distribution."""
    project = tomllib.loads((DIST / "pyproject.toml").read_text())["project"]
    info = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    metadata = f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    (info / "METADATA").write_text(metadata)
    groups = [
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
        for group, entries in project["entry-points"].items()
    ]
    (info / "entry_points.txt").write_text("\n".join(groups))
    shutil.copy(DIST / f"{MODULE}.py", target / f"{MODULE}.py")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    _forget_plugins()
    yield
    _forget_plugins()


def test_the_distribution_registers_one_of_each(installed: None) -> None:
    assert "rack_healthy" in filters.registry()
    assert "rack_power" in weighers.registry()


def test_they_run_in_the_pipeline(
    installed: None, db: Database, make_services: MakeServices
) -> None:
    write_cloud(db, 3)
    racks = {1: {"healthy": False, "spare_kw": 90}, 2: {"spare_kw": 5}, 3: {"spare_kw": 40}}
    for i, rack in racks.items():
        atomically(
            db,
            lambda conn, i=i, rack=rack: state_store.put(  # type: ignore[misc]
                conn, RULES, host_uuid(i), "rack", rack, 0
            ),
            3,
            operation="test",
        )
    services = make_services(filters="host_enabled,rack_healthy", weighers="rack_power=1.0")
    spec = RequestSpec(resources={"VCPU": 1}, dry_run=True, explain=True)
    answer = select_destinations(services, spec)
    assert answer.selections[0].host_uuid == host_uuid(3)  # the most spare power left
    explanation = answer.explanation
    assert explanation is not None
    stages = {stage["stage"]: stage for stage in explanation.as_body()["stages"]}
    assert stages["rack_healthy"]["removed"] == {"rack unhealthy": 1}


def test_not_installed_is_an_unknown_name() -> None:
    _forget_plugins()
    with pytest.raises(ValueError, match=r"scheduler_filters: unknown \['rack_healthy'\]"):
        from_settings(Settings(scheduler_filters="host_enabled,rack_healthy"))


def _entry(
    name: str, value: str, group: str = plugins.FILTER_GROUP
) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=group)


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (_entry("host_enabled", "os:getcwd"), "host_enabled is a built-in name"),
        (_entry("mine", "no_such_module_here:Thing"), "cannot be loaded"),
        (_entry("mine", "os:sep"), "not a class or factory"),
    ],
)
def test_a_bad_entry_point_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, entry: importlib.metadata.EntryPoint, said: str
) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry])
    with pytest.raises(ValueError, match=f"entry point {entry.name} = {entry.value}") as caught:
        plugins.load(plugins.FILTER_GROUP, filters.FILTERS)
    assert said in str(caught.value)


def test_a_factory_must_make_what_it_says() -> None:
    with pytest.raises(ValueError, match="scheduler_filters: mine made"):
        plugins.make("mine", filters.HostEnabled, filters.Filter, "scheduler_filters")
    with pytest.raises(ValueError, match="not a Weigher"):
        plugins.make("host_enabled", filters.HostEnabled, weighers.Weigher, "scheduler_weighers")
