"""The ``openstack`` CLI with osc-placement against a running berth.

One test per command family, each run at the microversions where the CLI
behaves differently ("1" lets the CLI negotiate: it asks for 1.29, its newest
version without a gap).  The families go through one way of skipping Keystone
(``--os-auth-type admin_token`` against a noauth2 berth); the other one
(``--os-auth-type none`` against an admin_token berth) only changes the
request's token, so the resource provider family (writes, reads, errors) and
the ``openstack`` script go both ways (``any_cli``) and the others do not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from berth.api import routes

from .conftest import AUTHS, open_cli
from .helpers import OpenStackCLI, custom, unique

# Real servers and ~200 CLI runs: about a minute.
pytestmark = pytest.mark.slow


@pytest.fixture
def cli(request: pytest.FixtureRequest) -> OpenStackCLI:
    """The ``openstack`` CLI with ``--os-auth-type admin_token`` (noauth2 berth)."""
    return open_cli(request, "admin_token")


@pytest.fixture(params=AUTHS)
def any_cli(request: pytest.FixtureRequest) -> OpenStackCLI:
    """The ``openstack`` CLI with each way of skipping Keystone."""
    return open_cli(request, request.param)


def _at_least(version: str, minor: int) -> bool:
    """Whether a CLI version string ("1" negotiates 1.29) is >= 1.<minor>."""
    effective = 29 if version == "1" else int(version.split(".")[1])
    return effective >= minor


def _provider(cli: OpenStackCLI, version: str, parent: str | None = None) -> dict:
    extra = f" --parent-provider {parent}" if parent else ""
    return cli(f"resource provider create {unique('rp')}{extra}", version)


@pytest.mark.parametrize("version", ["1.0", "1.14", "1", "1.39"])
def test_resource_provider(any_cli: OpenStackCLI, version: str) -> None:
    """create, list (with every filter the version allows), show, set, delete."""
    cli = any_cli
    name = unique("rp")
    rp = cli(f"resource provider create {name}", version)
    assert rp["name"] == name and rp["generation"] == 0
    assert ("root_provider_uuid" in rp) is _at_least(version, 14)

    listed = cli(f"resource provider list --name {name}", version)
    assert [p["uuid"] for p in listed] == [rp["uuid"]]
    assert cli(f"resource provider list --uuid {rp['uuid']}", version)[0]["name"] == name

    shown = cli(f"resource provider show {rp['uuid']} --allocations", version)
    assert shown["uuid"] == rp["uuid"] and shown["allocations"] == {}

    renamed = cli(f"resource provider set {rp['uuid']} --name {name}-new", version)
    assert renamed["name"] == f"{name}-new"

    if _at_least(version, 14):
        child = _provider(cli, version, parent=rp["uuid"])
        assert child["parent_provider_uuid"] == rp["uuid"]
        assert child["root_provider_uuid"] == rp["uuid"]
        tree = cli(f"resource provider list --in-tree {child['uuid']}", version)
        assert {p["uuid"] for p in tree} == {rp["uuid"], child["uuid"]}
        orphan = _provider(cli, version)
        adopted = cli(
            f"resource provider set {orphan['uuid']} --name {unique('rp')} "
            f"--parent-provider {rp['uuid']}",
            version,
        )
        assert adopted["parent_provider_uuid"] == rp["uuid"]
        err = cli.fails(f"resource provider delete {rp['uuid']}", version)
        assert "Unable to delete parent resource provider" in err and "409" in err
        cli.ok(f"resource provider delete {child['uuid']}", version)
        cli.ok(f"resource provider delete {orphan['uuid']}", version)
    else:
        parent = f"--parent-provider {rp['uuid']}"
        cli.fails(f"resource provider create {unique('rp')} {parent}", version)

    cli.ok(f"resource provider delete {rp['uuid']}", version)
    err = cli.fails(f"resource provider show {rp['uuid']}", version)
    assert "No resource provider with uuid" in err and "404" in err
    assert cli(f"resource provider list --name {name}-new", version) == []


@pytest.mark.parametrize("version", ["1.4", "1.22", "1", "1.39"])
def test_resource_provider_list_filters(cli: OpenStackCLI, version: str) -> None:
    """list --resource, --member-of, --required, forbidden and any-of traits."""
    trait_a, trait_b = custom("a"), custom("b")
    cli.ok(f"trait create {trait_a}", "1.6")
    cli.ok(f"trait create {trait_b}", "1.6")
    agg = str(uuid.uuid4())
    big, small = _provider(cli, version), _provider(cli, version)
    cli(f"resource provider inventory set {big['uuid']} --resource VCPU=16", version)
    cli(f"resource provider inventory set {small['uuid']} --resource VCPU=2", version)
    agg_version = "1.19" if not _at_least(version, 19) else version
    gen = cli(f"resource provider show {big['uuid']}", agg_version)["generation"]
    cli(f"resource provider aggregate set {big['uuid']} --aggregate {agg} --generation {gen}",
        agg_version)  # fmt: skip
    cli(f"resource provider trait set {big['uuid']} --trait {trait_a}", "1.6")
    cli(f"resource provider trait set {small['uuid']} --trait {trait_b}", "1.6")
    ours = {big["uuid"], small["uuid"]}

    def found(filters: str) -> set[str]:
        rows = cli(f"resource provider list {filters}", version)
        return {p["uuid"] for p in rows} & ours

    assert found("--resource VCPU=4") == {big["uuid"]}
    assert found("--resource VCPU=1") == ours
    assert found(f"--member-of {agg}") == {big["uuid"]}
    assert found(f"--aggregate-uuid {agg}") == {big["uuid"]}
    if _at_least(version, 18):
        assert found(f"--required {trait_a}") == {big["uuid"]}
    else:
        cli.fails(f"resource provider list --required {trait_a}", version)
    if _at_least(version, 22):
        assert found(f"--forbidden {trait_a}") == {small["uuid"]}
    if _at_least(version, 39):
        assert found(f"--required {trait_a},{trait_b}") == ours
    elif _at_least(version, 18):
        err = cli.fails(f"resource provider list --required {trait_a},{trait_b}", version)
        assert "1.39" in err
    for rp in (big, small):
        cli.ok(f"resource provider delete {rp['uuid']}", version)


@pytest.mark.parametrize("version", ["1.0", "1", "1.39"])
def test_inventory(cli: OpenStackCLI, version: str) -> None:
    """inventory set (replace, --amend, --dry-run), class set, list, show, delete."""
    rp = _provider(cli, version)
    rows = cli(
        f"resource provider inventory set {rp['uuid']} --resource VCPU=8 "
        "--resource VCPU:allocation_ratio=4.0 --resource MEMORY_MB=4096 "
        "--resource MEMORY_MB:max_unit=1024 --resource MEMORY_MB:step_size=256",
        version,
    )
    by_class = {r["resource_class"]: r for r in rows}
    assert by_class["VCPU"]["total"] == 8 and by_class["VCPU"]["allocation_ratio"] == 4.0
    assert by_class["MEMORY_MB"]["max_unit"] == 1024
    assert by_class["MEMORY_MB"]["step_size"] == 256

    dry = cli(f"resource provider inventory set {rp['uuid']} --resource DISK_GB=9 --dry-run",
              version)  # fmt: skip
    assert [r["resource_class"] for r in dry] == ["DISK_GB"]
    amended = cli(
        f"resource provider inventory set {rp['uuid']} --amend --resource DISK_GB=100", version
    )
    assert {r["resource_class"] for r in amended} == {"VCPU", "MEMORY_MB", "DISK_GB"}

    listed = cli(f"resource provider inventory list {rp['uuid']}", version)
    assert {r["resource_class"]: r["used"] for r in listed} == {
        "VCPU": 0,
        "MEMORY_MB": 0,
        "DISK_GB": 0,
    }
    shown = cli(f"resource provider inventory show {rp['uuid']} VCPU", version)
    assert shown["total"] == 8 and shown["used"] == 0

    updated = cli(
        f"resource provider inventory class set {rp['uuid']} DISK_GB --total 200 --reserved 10",
        version,
    )
    assert updated["total"] == 200 and updated["reserved"] == 10

    err = cli.fails(
        f"resource provider inventory class set {rp['uuid']} DISK_GB --total 5 --reserved 10",
        version,
    )
    assert "400" in err
    err = cli.fails(f"resource provider inventory show {rp['uuid']} PCI_DEVICE", version)
    assert "404" in err

    cli.ok(f"resource provider inventory delete {rp['uuid']} --resource-class DISK_GB", version)
    left = cli(f"resource provider inventory list {rp['uuid']}", version)
    assert {r["resource_class"] for r in left} == {"VCPU", "MEMORY_MB"}
    if _at_least(version, 5):
        cli.ok(f"resource provider inventory delete {rp['uuid']}", version)
        assert cli(f"resource provider inventory list {rp['uuid']}", version) == []
    else:
        cli.fails(f"resource provider inventory delete {rp['uuid']}", version)
    cli.ok(f"resource provider delete {rp['uuid']}", version)


@pytest.mark.parametrize("version", ["1.2", "1.7", "1"])
def test_resource_class(cli: OpenStackCLI, version: str) -> None:
    """resource class create, list, show, set, delete."""
    name = custom("rc")
    cli.ok(f"resource class create {name}", version)
    names = [r["name"] for r in cli("resource class list", version)]
    assert name in names and "VCPU" in names
    assert cli(f"resource class show {name}", version) == {"name": name}
    err = cli.fails(f"resource class create {name}", version)
    assert "409" in err
    err = cli.fails("resource class create NOT_CUSTOM", version)
    assert "400" in err
    if _at_least(version, 7):
        other = custom("rc")
        cli.ok(f"resource class set {other}", version)  # create by PUT
        cli.ok(f"resource class set {other}", version)  # idempotent
        assert cli(f"resource class show {other}", version) == {"name": other}
        cli.ok(f"resource class delete {other}", version)
    else:
        cli.fails(f"resource class set {custom('rc')}", version)
    err = cli.fails("resource class delete VCPU", version)
    assert "Cannot delete standard resource class" in err
    cli.ok(f"resource class delete {name}", version)
    err = cli.fails(f"resource class show {name}", version)
    assert "404" in err


@pytest.mark.parametrize("version", ["1.6", "1"])
def test_trait(cli: OpenStackCLI, version: str) -> None:
    """trait create, list (name and associated filters), show, delete."""
    name = custom("trait")
    cli.ok(f"trait create {name}", version)
    cli.ok(f"trait create {name}", version)  # idempotent PUT
    assert cli(f"trait show {name}", version) == {"name": name}
    assert [t["name"] for t in cli(f"trait list --name in:{name}", version)] == [name]
    prefix = name[: len("CUSTOM_TRAIT_") + 4]
    assert name in [t["name"] for t in cli(f"trait list --name startswith:{prefix}", version)]
    assert "HW_CPU_X86_AVX" in [t["name"] for t in cli("trait list", version)]
    rp = _provider(cli, version)
    cli(f"resource provider trait set {rp['uuid']} --trait {name}", version)
    assert name in [t["name"] for t in cli("trait list --associated", version)]
    err = cli.fails(f"trait delete {name}", version)
    assert "409" in err
    err = cli.fails("trait delete HW_CPU_X86_AVX", version)
    assert "Cannot delete standard trait" in err
    cli.ok(f"resource provider delete {rp['uuid']}", version)
    cli.ok(f"trait delete {name}", version)
    assert "404" in cli.fails(f"trait show {name}", version)


@pytest.mark.parametrize("version", ["1.6", "1", "1.39"])
def test_provider_trait(cli: OpenStackCLI, version: str) -> None:
    """resource provider trait set, list, delete."""
    mine = custom("trait")
    cli.ok(f"trait create {mine}", version)
    rp = _provider(cli, version)
    rows = cli(f"resource provider trait set {rp['uuid']} --trait {mine} "
               "--trait HW_CPU_X86_AVX", version)  # fmt: skip
    assert {t["name"] for t in rows} == {mine, "HW_CPU_X86_AVX"}
    listed = cli(f"resource provider trait list {rp['uuid']}", version)
    assert {t["name"] for t in listed} == {mine, "HW_CPU_X86_AVX"}
    assert cli(f"resource provider show {rp['uuid']}", version)["generation"] == 1
    err = cli.fails(f"resource provider trait set {rp['uuid']} --trait CUSTOM_NO_SUCH_{mine}",
                    version)  # fmt: skip
    assert "400" in err
    cli.ok(f"resource provider trait delete {rp['uuid']}", version)
    assert cli(f"resource provider trait list {rp['uuid']}", version) == []
    cli.ok(f"resource provider delete {rp['uuid']}", version)
    cli.ok(f"trait delete {mine}", version)


@pytest.mark.parametrize("version", ["1.1", "1.19", "1"])
def test_provider_aggregate(cli: OpenStackCLI, version: str) -> None:
    """resource provider aggregate set and list (with generations from 1.19)."""
    rp = _provider(cli, version)
    aggs = sorted(str(uuid.uuid4()) for _ in range(2))
    args = " ".join(f"--aggregate {a}" for a in aggs)
    if _at_least(version, 19):
        err = cli.fails(f"resource provider aggregate set {rp['uuid']} {args}", version)
        assert "A generation must be specified" in err
        err = cli.fails(
            f"resource provider aggregate set {rp['uuid']} {args} --generation 5", version
        )
        assert "409" in err
        rows = cli(f"resource provider aggregate set {rp['uuid']} {args} --generation 0", version)
        assert cli(f"resource provider show {rp['uuid']}", version)["generation"] == 1
    else:
        rows = cli(f"resource provider aggregate set {rp['uuid']} {args}", version)
    assert sorted(r["uuid"] for r in rows) == aggs
    listed = cli(f"resource provider aggregate list {rp['uuid']}", version)
    assert sorted(r["uuid"] for r in listed) == aggs
    err = cli.fails(f"resource provider aggregate list {uuid.uuid4()}", version)
    assert "404" in err
    cli.ok(f"resource provider delete {rp['uuid']}", version)


def _host(cli: OpenStackCLI, version: str) -> dict:
    rp = _provider(cli, version)
    cli(f"resource provider inventory set {rp['uuid']} --resource VCPU=8 "
        "--resource MEMORY_MB=4096 --resource DISK_GB=100", version)  # fmt: skip
    return rp


@pytest.mark.parametrize("version", ["1.8", "1.12", "1.28", "1", "1.38", "1.39"])
def test_allocation(cli: OpenStackCLI, version: str) -> None:
    """resource provider allocation set, show, unset, delete."""
    rp1, rp2 = _host(cli, version), _host(cli, version)
    consumer, project, user = str(uuid.uuid4()), unique("proj"), unique("user")
    ctype = " --consumer-type INSTANCE" if _at_least(version, 38) else ""
    rows = cli(
        f"resource provider allocation set {consumer} --project-id {project} "
        f"--user-id {user}{ctype} --allocation rp={rp1['uuid']},VCPU=2,MEMORY_MB=512 "
        f"--allocation rp={rp2['uuid']},DISK_GB=10",
        version,
    )
    by_rp = {r["resource_provider"]: r for r in rows}
    assert by_rp[rp1["uuid"]]["resources"] == {"VCPU": 2, "MEMORY_MB": 512}
    assert by_rp[rp2["uuid"]]["resources"] == {"DISK_GB": 10}
    if _at_least(version, 12):
        assert by_rp[rp1["uuid"]]["project_id"] == project
        assert by_rp[rp1["uuid"]]["user_id"] == user
    if _at_least(version, 38):
        assert by_rp[rp1["uuid"]]["consumer_type"] == "INSTANCE"

    shown = cli(f"resource provider allocation show {consumer}", version)
    assert {r["resource_provider"] for r in shown} == {rp1["uuid"], rp2["uuid"]}
    on_rp = cli(f"resource provider show {rp1['uuid']} --allocations", version)
    assert on_rp["allocations"][consumer]["resources"] == {"VCPU": 2, "MEMORY_MB": 512}

    err = cli.fails(
        f"resource provider allocation set {uuid.uuid4()!s} --project-id {project} "
        f"--user-id {user}{ctype} --allocation rp={rp1['uuid']},VCPU=100",
        version,
    )
    assert "409" in err and "VCPU" in err

    if _at_least(version, 12):
        rows = cli(
            f"resource provider allocation unset {consumer} --provider {rp1['uuid']} "
            "--resource-class VCPU",
            version,
        )
        by_rp = {r["resource_provider"]: r["resources"] for r in rows}
        assert by_rp == {rp1["uuid"]: {"MEMORY_MB": 512}, rp2["uuid"]: {"DISK_GB": 10}}
        rows = cli(f"resource provider allocation unset {consumer} --provider {rp2['uuid']}",
                   version)  # fmt: skip
        assert [r["resource_provider"] for r in rows] == [rp1["uuid"]]
    else:
        cli.fails(f"resource provider allocation unset {consumer}", version)

    cli.ok(f"resource provider allocation delete {consumer}", version)
    assert cli(f"resource provider allocation show {consumer}", version) == []
    for rp in (rp1, rp2):
        cli.ok(f"resource provider delete {rp['uuid']}", version)


@pytest.mark.parametrize("version", ["1.9", "1", "1.38"])
def test_usage(cli: OpenStackCLI, version: str) -> None:
    """resource provider usage show and resource usage show (project, user)."""
    rp = _host(cli, "1.14")
    project, user, other = unique("proj"), unique("user"), unique("user")
    for who, vcpu in ((user, 2), (other, 3)):
        cli(
            f"resource provider allocation set {uuid.uuid4()} --project-id {project} "
            f"--user-id {who} --consumer-type INSTANCE "
            f"--allocation rp={rp['uuid']},VCPU={vcpu},MEMORY_MB=256",
            "1.38",
        )
    usage = {r["resource_class"]: r["usage"]
             for r in cli(f"resource provider usage show {rp['uuid']}", version)}  # fmt: skip
    assert usage == {"VCPU": 5, "MEMORY_MB": 512, "DISK_GB": 0}

    def project_usage(extra: str = "") -> dict:
        rows = cli(f"resource usage show {project}{extra}", version)
        return {r["resource_class"]: r["usage"] for r in rows}

    if _at_least(version, 38):
        assert project_usage() == {"INSTANCE": {"consumer_count": 2, "VCPU": 5, "MEMORY_MB": 512}}
        assert project_usage(f" --user-id {user}") == {
            "INSTANCE": {"consumer_count": 1, "VCPU": 2, "MEMORY_MB": 256}
        }
    else:
        assert project_usage() == {"VCPU": 5, "MEMORY_MB": 512}
        assert project_usage(f" --user-id {user}") == {"VCPU": 2, "MEMORY_MB": 256}
    assert "1.9" in cli.fails(f"resource usage show {project}", "1.8")
    assert "404" in cli.fails(f"resource provider usage show {uuid.uuid4()}", version)


needs_candidates = pytest.mark.skipif(
    "/allocation_candidates" not in routes.ROUTES,
    reason="GET /allocation_candidates is not routed in berth yet",
)


@needs_candidates
@pytest.mark.parametrize("version", ["1.10", "1.17", "1", "1.39"])
def test_allocation_candidate(cli: OpenStackCLI, version: str) -> None:
    """allocation candidate list with resources, limit, traits, aggregates, groups."""
    trait_a, trait_b = custom("a"), custom("b")
    for trait in (trait_a, trait_b):
        cli.ok(f"trait create {trait}", "1.6")
    # Two hosts with their own trait and a unique amount of a custom class,
    # so that only these two providers can ever be candidates.
    rc = custom("rc")
    cli.ok(f"resource class create {rc}", "1.2")
    agg = str(uuid.uuid4())
    hosts = []
    for trait in (trait_a, trait_b):
        rp = _provider(cli, "1.14")
        cli(f"resource provider inventory set {rp['uuid']} --resource {rc}=4 "
            "--resource VCPU=8", "1.14")  # fmt: skip
        cli(f"resource provider trait set {rp['uuid']} --trait {trait}", "1.6")
        hosts.append(rp["uuid"])
    cli(f"resource provider aggregate set {hosts[0]} --aggregate {agg} --generation 2", "1.19")

    def candidates(filters: str) -> list[dict]:
        return cli(f"allocation candidate list --resource {rc}=1 {filters}", version)

    rows = candidates("")
    assert {r["resource provider"] for r in rows} == set(hosts)
    assert all(r["allocation"] == f"{rc}=1" for r in rows)
    one = {r["resource provider"]: r for r in rows}[hosts[0]]
    # From 1.27 a provider summary lists all its inventory, not only the
    # requested classes.
    capacity = {f"{rc}=0/4", "VCPU=0/8"} if _at_least(version, 27) else {f"{rc}=0/4"}
    assert set(one["inventory used/capacity"].split(",")) == capacity
    if _at_least(version, 16):
        assert len(candidates("--limit 1")) == 1
    if _at_least(version, 17):
        assert [r["resource provider"] for r in candidates(f"--required {trait_a}")] == [hosts[0]]
        assert {r["resource provider"]: r["traits"] for r in rows}[hosts[1]] == trait_b
    else:
        cli.fails(f"allocation candidate list --resource {rc}=1 --required {trait_a}", version)
    if _at_least(version, 21):
        assert [r["resource provider"] for r in candidates(f"--member-of {agg}")] == [hosts[0]]
    if _at_least(version, 22):
        assert [r["resource provider"] for r in candidates(f"--forbidden {trait_a}")] == [hosts[1]]
    if _at_least(version, 25):
        grouped = cli(
            f"allocation candidate list --group 1 --resource {rc}=1 --required {trait_b} "
            "--group 2 --resource VCPU=1 --group-policy none",
            version,
        )
        assert {r["resource provider"] for r in grouped} == {hosts[1]}
    if _at_least(version, 39):
        assert {r["resource provider"] for r in candidates(f"--required {trait_a},{trait_b}")} == (
            set(hosts)
        )
    for rp_uuid in hosts:
        cli.ok(f"resource provider delete {rp_uuid}", "1.14")


def test_openstack_script(any_cli: OpenStackCLI) -> None:
    """The installed ``openstack`` script itself negotiates 1.29 and lists classes."""
    cli = any_cli
    script = Path(sys.executable).parent / "openstack"
    if not script.exists():
        pytest.skip(f"no openstack script next to {sys.executable}")
    done = subprocess.run(
        [str(script), *cli.auth_args, "--debug", "resource", "class", "list", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "OpenStack-API-Version: placement 1.29" in done.stderr
    assert "VCPU" in [row["name"] for row in json.loads(done.stdout)]
