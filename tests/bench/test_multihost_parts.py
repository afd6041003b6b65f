"""The pieces of berth.bench.multihost that need no namespace: names, addresses, configs, slots."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from berth.bench import haproxy, netns, runs


@pytest.mark.parametrize("slot", [1, 250])
def test_names_fit_and_addresses_never_meet(slot: int) -> None:
    plan = netns.Plan(slot)
    hosts = range(netns.MAX_HOSTS)
    links = [plan.link(h, kind) for h in hosts for kind in ("api", "db")]
    assert len(set(links)) == len(links) and max(map(len, links)) <= 15  # IFNAMSIZ - 1
    addresses = [
        plan.address(h, kind, root_side=side)
        for h in hosts
        for kind in ("api", "db")
        for side in (False, True)
    ]
    assert len(set(addresses)) == len(addresses)
    subnet = ipaddress.ip_network(f"10.77.{slot}.0/24")
    for h in hosts:
        for kind in ("api", "db"):
            pair = ipaddress.ip_network(f"{plan.address(h, kind)}/30", strict=False)
            assert pair.subnet_of(subnet)  # type: ignore[arg-type]
            assert ipaddress.ip_address(plan.address(h, kind, root_side=True)) in pair


def test_run_names_are_recognised_and_nothing_else() -> None:
    run = netns.Plan(7)
    names = [run.namespace(0), run.namespace(12), run.link(3, "api"), run.link(3, "db"), run.run]
    assert {netns._RUN_NAME.match(n).group(1) for n in names} == {"bmh7"}  # type: ignore[union-attr]
    for other in ("bmhprobe12", "bmh", "eth0", "bmh7-x", "xbmh7"):
        assert netns._RUN_NAME.match(other) is None


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_configs(tmp_path: Path) -> None:
    configs = {
        "db": haproxy.forwarder_config("127.0.0.1:15432", "127.0.0.1:5432"),
        "front": haproxy.front_config("127.0.0.1:18778", ["10.77.1.2:8780", "10.77.1.10:8780"]),
    }
    for name, config in configs.items():
        path = tmp_path / f"{name}.cfg"
        path.write_text(config)
        checked = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True)
        assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and ip")
def test_runs_made_at_once_get_their_own_slots(tmp_path: Path) -> None:
    plans: list[netns.Plan] = []

    def take() -> None:
        plans.append(runs.allocate(tmp_path))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({p.slot for p in plans}) == 8
    assert not {p.run for p in plans} & netns.runs_present()  # nor one in use on the machine
    assert all(runs.owner_alive(p.run, tmp_path) for p in plans)
    # Not torn down here: that would delete namespaces by these names, which a run of the
    # real root (a test worker in parallel) may have taken since.
    (tmp_path / plans[0].run / "owner.json").write_text('{"pid": 1, "started": "0"}')
    assert not runs.owner_alive(plans[0].run, tmp_path)
