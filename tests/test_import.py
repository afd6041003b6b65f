"""``berth import``: a database written by the real Placement, copied exactly.

The reference (openstack-placement 16.0.0, installed by ``scripts/reference
install``) is started on its own SQLite file; data is written through its API
(nested and re-parented providers, a sharing provider, custom classes and
traits, aggregates, allocations with and without consumer types, an
incomplete pre-1.8 consumer, deleted rows leaving id gaps); its answers to a
set of GETs are recorded; it is stopped; its file is imported into berth on
each database backend; berth, serving the copy, must answer the same GETs with
the same bodies.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import MYSQL_URL, REQUIRE, SESSION_DB, _reachable
from server import ROOT, free_port, running_berth
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from berth import cli, importer
from berth.db import tables as t
from berth.db.engine import Database

REFERENCE_VENV = Path(
    os.environ.get("REFERENCE_VENV", Path.home() / ".cache/placement-conformance/venv")
)
pytestmark = pytest.mark.skipif(
    not (REFERENCE_VENV / "bin" / "placement-manage").exists(),
    reason=f"no reference Placement venv at {REFERENCE_VENV} (run: scripts/reference install)",
)

LATEST = "1.39"


class Client:
    """Admin calls to a Placement API at a given microversion."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"x-auth-token": "admin"}, timeout=60)

    def call(self, method: str, path: str, body: Any = None, version: str = LATEST) -> Any:
        headers = {"openstack-api-version": f"placement {version}"}
        resp = self.http.request(method, path, json=body, headers=headers)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def answer(self, path: str, version: str) -> tuple[int, Any]:
        resp = self.http.get(path, headers={"openstack-api-version": f"placement {version}"})
        return resp.status_code, resp.json() if resp.content else None


def _provider(api: Client, name: str, parent: str | None = None) -> str:
    body: dict[str, Any] = {"name": name}
    if parent:
        body["parent_provider_uuid"] = parent
    return str(api.call("POST", "/resource_providers", body)["uuid"])


def _inventory(api: Client, rp: str, inventories: dict[str, dict[str, Any]]) -> None:
    gen = api.call("GET", f"/resource_providers/{rp}")["generation"]
    body = {"resource_provider_generation": gen, "inventories": inventories}
    api.call("PUT", f"/resource_providers/{rp}/inventories", body)


def _traits(api: Client, rp: str, *traits: str) -> None:
    gen = api.call("GET", f"/resource_providers/{rp}")["generation"]
    body = {"resource_provider_generation": gen, "traits": list(traits)}
    api.call("PUT", f"/resource_providers/{rp}/traits", body)


def _aggregates(api: Client, rp: str, *aggs: str) -> None:
    gen = api.call("GET", f"/resource_providers/{rp}")["generation"]
    body = {"resource_provider_generation": gen, "aggregates": list(aggs)}
    api.call("PUT", f"/resource_providers/{rp}/aggregates", body)


def _allocate(api: Client, consumer: str, allocs: dict[str, dict[str, int]], **extra: Any) -> None:
    body = {
        "allocations": {rp: {"resources": res} for rp, res in allocs.items()},
        "consumer_generation": None,
        **extra,
    }
    api.call("PUT", f"/allocations/{consumer}", body)


def write_cloud(api: Client) -> dict[str, Any]:
    """A small but awkward cloud, written through the reference's API."""
    for rc in ("CUSTOM_GPU_SLICE", "CUSTOM_LICENSE", "CUSTOM_GONE"):
        api.call("PUT", f"/resource_classes/{rc}")
    api.call("DELETE", "/resource_classes/CUSTOM_GONE")  # leaves an id gap
    for trait in ("CUSTOM_RACK_A", "CUSTOM_FAST_NIC", "CUSTOM_UNUSED"):
        api.call("PUT", f"/traits/{trait}")
    agg1, agg2 = str(uuid.uuid4()), str(uuid.uuid4())

    late_child = _provider(api, "late-child")  # re-parented below a newer provider
    gone = _provider(api, "gone")
    api.call("DELETE", f"/resource_providers/{gone}")
    cn1 = _provider(api, "compute1")
    numa0 = _provider(api, "compute1-numa0", cn1)
    numa1 = _provider(api, "compute1-numa1", cn1)
    gpu = _provider(api, "compute1-numa0-gpu", numa0)
    cn2 = _provider(api, "compute2")
    disk = _provider(api, "shared-disk")
    api.call("PUT", f"/resource_providers/{late_child}",
             {"name": "late-child", "parent_provider_uuid": cn2})  # fmt: skip

    memory = {"total": 32768, "reserved": 512, "step_size": 256}
    _inventory(api, cn1, {"VCPU": {"total": 16, "allocation_ratio": 4.0}, "MEMORY_MB": memory})
    for numa in (numa0, numa1):
        _inventory(api, numa, {"PCPU": {"total": 8, "max_unit": 4}})
    _inventory(api, gpu, {"CUSTOM_GPU_SLICE": {"total": 8, "min_unit": 2, "step_size": 2}})
    _inventory(api, cn2, {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 8192},
                          "CUSTOM_LICENSE": {"total": 3}})  # fmt: skip
    _inventory(api, disk, {"DISK_GB": {"total": 2000, "reserved": 100, "allocation_ratio": 1.5}})
    _inventory(api, late_child, {"SRIOV_NET_VF": {"total": 4}})

    _traits(api, cn1, "HW_CPU_X86_AVX2", "CUSTOM_RACK_A", "COMPUTE_STATUS_DISABLED")
    _traits(api, gpu, "CUSTOM_FAST_NIC")
    _traits(api, disk, "MISC_SHARES_VIA_AGGREGATE")
    _traits(api, late_child, "CUSTOM_FAST_NIC", "HW_NIC_SRIOV")
    _aggregates(api, cn1, agg1, agg2)
    _aggregates(api, cn2, agg1)
    _aggregates(api, disk, agg1)

    consumers = [str(uuid.uuid4()) for _ in range(5)]
    _allocate(api, consumers[0], {cn1: {"VCPU": 4, "MEMORY_MB": 4096}, numa0: {"PCPU": 2},
                                  gpu: {"CUSTOM_GPU_SLICE": 4}},
              project_id="p1", user_id="u1", consumer_type="INSTANCE")  # fmt: skip
    _allocate(api, consumers[1], {cn2: {"VCPU": 2, "CUSTOM_LICENSE": 1}, disk: {"DISK_GB": 100},
                                  late_child: {"SRIOV_NET_VF": 1}},
              project_id="p1", user_id="u2", consumer_type="MIGRATION")  # fmt: skip
    # No consumer type (written before 1.38).
    body = {"allocations": {cn2: {"resources": {"MEMORY_MB": 1024}}}, "project_id": "p2",
            "user_id": "u1", "consumer_generation": None}  # fmt: skip
    api.call("PUT", f"/allocations/{consumers[2]}", body, version="1.28")
    # No project or user at all (1.0): an "incomplete" consumer.
    body = {"allocations": [{"resource_provider": {"uuid": cn1}, "resources": {"VCPU": 1}}]}
    api.call("PUT", f"/allocations/{consumers[3]}", body, version="1.0")
    # Allocated, then released: the consumer is gone.
    _allocate(api, consumers[4], {cn2: {"VCPU": 1}}, project_id="p3", user_id="u3",
              consumer_type="INSTANCE")  # fmt: skip
    api.call("DELETE", f"/allocations/{consumers[4]}")
    return {
        "providers": [late_child, cn1, numa0, numa1, gpu, cn2, disk, gone],
        "consumers": consumers,
        "aggregates": [agg1, agg2],
        "roots": {"cn1": cn1, "cn2": cn2, "gpu": gpu},
    }


def gets(cloud: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, microversion) pairs whose answers must be identical after the import."""
    paths: list[tuple[str, str]] = []
    for version in ("1.0", "1.14", "1.20", LATEST):
        paths.append(("/resource_providers", version))
    for rp in cloud["providers"]:
        base = f"/resource_providers/{rp}"
        for suffix in ("", "/inventories", "/usages", "/traits", "/allocations"):
            paths.append((base + suffix, LATEST))
        paths += [(base + "/aggregates", "1.1"), (base + "/aggregates", LATEST)]
        paths += [(base, "1.0"), (base + "/inventories/VCPU", LATEST)]
    for consumer in cloud["consumers"]:
        for version in ("1.0", "1.12", "1.28", LATEST):
            paths.append((f"/allocations/{consumer}", version))
    agg1, agg2 = cloud["aggregates"]
    roots = cloud["roots"]
    paths += [
        ("/resource_classes/CUSTOM_GPU_SLICE", LATEST),
        ("/resource_classes/CUSTOM_GONE", LATEST),
        ("/traits?name=startswith:CUSTOM_", LATEST),
        ("/traits?associated=true", LATEST),
        ("/usages?project_id=p1", "1.9"),
        ("/usages?project_id=p1", LATEST),
        ("/usages?project_id=p1&user_id=u2", LATEST),
        ("/usages?project_id=p2", LATEST),
        (f"/resource_providers?member_of={agg1}", LATEST),
        (f"/resource_providers?member_of=in:{agg1},{agg2}", LATEST),
        ("/resource_providers?required=CUSTOM_FAST_NIC", LATEST),
        ("/resource_providers?required=!CUSTOM_RACK_A", LATEST),
        (f"/resource_providers?in_tree={roots['gpu']}", LATEST),
        ("/resource_providers?resources=VCPU:8", LATEST),
        ("/resource_providers?resources=CUSTOM_GPU_SLICE:2", LATEST),
        ("/allocation_candidates?resources=VCPU:1,DISK_GB:10", LATEST),
        ("/allocation_candidates?resources=PCPU:2&required=CUSTOM_RACK_A", LATEST),
        ("/allocation_candidates?resources=VCPU:1&resources1=CUSTOM_GPU_SLICE:2"
         "&group_policy=none", LATEST),
    ]  # fmt: skip
    return paths


def _run_reference(state: Path, database_url: str) -> dict[str, Any]:
    """Start the reference on ``database_url``, write the cloud, record the answers."""
    port = free_port()
    env = {
        **os.environ,
        "REFERENCE_STATE": str(state),
        "REFERENCE_PORT": str(port),
        "REFERENCE_VENV": str(REFERENCE_VENV),
        "REFERENCE_DATABASE_URL": database_url,
    }
    script = str(ROOT / "scripts" / "reference")
    subprocess.run([script, "start"], env=env, check=True, capture_output=True, timeout=180)
    try:
        api = Client(f"http://127.0.0.1:{port}")
        cloud = write_cloud(api)
        answers = {(path, v): api.answer(path, v) for path, v in gets(cloud)}
        classes = api.answer("/resource_classes", LATEST)[1]["resource_classes"]
    finally:
        subprocess.run([script, "stop"], env=env, check=True, timeout=60)
    return {
        "url": database_url,
        "answers": answers,
        "classes": {rc["name"] for rc in classes},
        "cloud": cloud,
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A reference SQLite database and the reference's answers to the GETs."""
    state = tmp_path_factory.mktemp("reference")
    return _run_reference(state, f"sqlite:///{state / 'placement.sqlite'}")


# The reference's MariaDB database: this session's own, as the session's database is.
SOURCE_DB = f"{SESSION_DB}_src"


@pytest.fixture(scope="module")
def reference_on_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The same, with the reference keeping its data in MariaDB (as most clouds do)."""
    server = Database(MYSQL_URL)
    problem = _reachable(server)
    if problem:
        pytest.fail(problem) if REQUIRE else pytest.skip(problem)
    with server.engine.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {SOURCE_DB}"))
        conn.execute(text(f"CREATE DATABASE {SOURCE_DB} CHARACTER SET utf8mb4"))
    source = make_url(MYSQL_URL).set(database=SOURCE_DB)
    try:
        yield _run_reference(
            tmp_path_factory.mktemp("reference-mariadb"),
            source.render_as_string(hide_password=False),
        )
    finally:
        with server.engine.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {SOURCE_DB}"))
        server.dispose()


def normalise(value: Any, key: str = "") -> Any:
    """Drop what must differ (request ids) and order what has no order.

    Trait lists come out in trait-id order, and berth's ids for standard
    traits are its own.  The reference builds allocation requests, and the
    providers of each request group (``mappings``), in sets: their order
    changes with Python's hash seed.  Everything else, including the order of
    providers and resource classes, must match as is.
    """
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items() if k != "request_id"}
    if isinstance(value, list):
        items = [normalise(v, "mapping" if key == "mappings" else "") for v in value]
        if key in ("traits", "mapping"):
            return sorted(items)
        if key == "allocation_requests":
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        return items
    return value


def _normalised(answer: tuple[int, Any]) -> tuple[int, Any]:
    status, body = answer
    if isinstance(body, dict):
        for request in body.get("allocation_requests", []):
            if isinstance(request.get("mappings"), dict):
                request["mappings"] = {
                    suffix: normalise(rps, "mapping") for suffix, rps in request["mappings"].items()
                }
    return status, normalise(body)


def _same_answers(url: str, reference: dict[str, Any]) -> None:
    api = Client(url)
    differences = []
    for (path, version), reference_answer in reference["answers"].items():
        expected = _normalised(reference_answer)
        got = _normalised(api.answer(path, version))
        if got != expected:
            differences.append(
                f"GET {path} @{version}\n  reference: {expected}\n  berth:     {got}"
            )
    assert not differences, "\n".join(differences)
    classes = {rc["name"] for rc in api.answer("/resource_classes", LATEST)[1]["resource_classes"]}
    assert reference["classes"] <= classes
    assert {c for c in classes if c.startswith("CUSTOM_")} == {
        c for c in reference["classes"] if c.startswith("CUSTOM_")
    }


@pytest.mark.databases
@pytest.mark.slow
def test_copy_is_exact(db: Database, reference: dict[str, Any]) -> None:
    """berth serving the imported copy answers every GET as the reference did."""
    report = importer.run(reference["url"], db)
    assert report.copied["resource_providers"] == 7
    assert report.copied["consumers"] == 4
    assert sorted(report.created_classes) == ["CUSTOM_GPU_SLICE", "CUSTOM_LICENSE"]
    assert report.skipped == []
    with running_berth(database_url=str(db.url)) as url:
        _same_answers(url, reference)
        # The copy is a live database: writes work (sequences moved on, etc.).
        api = Client(url)
        rp = _provider(api, "after-import")
        _inventory(api, rp, {"VCPU": {"total": 2}})
        _allocate(api, str(uuid.uuid4()), {rp: {"VCPU": 1}}, project_id="p9", user_id="u9",
                  consumer_type="INSTANCE")  # fmt: skip
        api.call("PUT", "/resource_classes/CUSTOM_AFTER")
        api.call("PUT", "/traits/CUSTOM_AFTER")


@pytest.mark.slow
def test_copy_from_mariadb_is_exact(sqlite_db: Database, reference_on_mariadb: dict) -> None:
    """A Placement database in MariaDB copies exactly too."""
    report = importer.run(reference_on_mariadb["url"], sqlite_db)
    assert report.copied["allocations"] == 10 and report.skipped == []
    with running_berth(database_url=str(sqlite_db.url)) as url:
        _same_answers(url, reference_on_mariadb)


def _count(db: Database, table: Any) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.mark.databases
def test_refuses_a_non_empty_berth_unless_forced(db: Database, reference: dict[str, Any]) -> None:
    """A second import is refused; with force it replaces the first, exactly."""
    importer.run(reference["url"], db)
    with pytest.raises(importer.ImportRefused, match=r"not empty.*7 resource providers"):
        importer.run(reference["url"], db)
    with db.write() as conn:  # berth-only data that force must remove
        conn.execute(t.traits.insert().values(name="CUSTOM_BERTH_ONLY"))
    report = importer.run(reference["url"], db, force=True)
    assert report.copied["allocations"] == _count(db, t.allocations) == 10
    assert _count(db, t.resource_providers) == 7
    with db.read() as conn:
        names = set(conn.execute(select(t.traits.c.name)).scalars())
    assert "CUSTOM_BERTH_ONLY" not in names and "CUSTOM_RACK_A" in names


def test_refuses_what_is_not_placement(sqlite_db: Database, tmp_path: Path) -> None:
    with pytest.raises(importer.ImportRefused, match="not a Placement database"):
        importer.run(f"sqlite:///{tmp_path / 'empty.sqlite'}", sqlite_db)
    with pytest.raises(importer.ImportRefused, match="own database"):
        importer.run(str(sqlite_db.url), sqlite_db)


def test_cli(tmp_path: Path, reference: dict[str, Any]) -> None:
    """``berth import --from`` migrates the target, copies, and reports per table."""
    target = f"sqlite:///{tmp_path / 'berth.sqlite'}"
    runner = CliRunner()
    args = ["import", "--from", reference["url"], "--database-url", target]
    first = runner.invoke(cli.app, args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "resource_providers" in first.output and "allocations" in first.output
    again = runner.invoke(cli.app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 2 and "use --force" in " ".join(again.output.split())
    forced = runner.invoke(cli.app, [*args, "--force"], env={"COLUMNS": "200"})
    assert forced.exit_code == 0, forced.output
