"""``berth agent`` as a process: creates its hosts through Placement, runs, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from berth.bench.launch import die_with_parent
from tests.agent.jetstream import require_nats, scratch
from tests.server import ROOT, running_berth

pytestmark = pytest.mark.slow


def _get(url: str, path: str) -> dict:
    req = urllib.request.Request(
        url + path, headers={"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _wait_for_line(path: Path, proc: subprocess.Popen[bytes], text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"agent exited with {proc.returncode}: {path.read_text()[-2000:]}")
        time.sleep(0.1)
    pytest.fail(f"no {text!r} from the agent within {timeout}s: {path.read_text()[-2000:]}")


def test_agent_creates_its_hosts_and_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM; a second run (SIGINT) that finds the hosts the first one made; a third that
    runs them by ``--hosts-from``."""
    nats_url = require_nats()
    create = ["--create", "3", "--name-prefix", "cmd-"]

    async def scenario(sig: int, hosts: list[str]) -> None:
        async with scratch(nats_url) as s:
            await asyncio.to_thread(_run_agent, url, nats_url, s.names, s.tag, sig, hosts, tmp_path)

    with running_berth() as url:
        asyncio.run(scenario(signal.SIGTERM, create))
        asyncio.run(scenario(signal.SIGINT, create))
        asyncio.run(scenario(signal.SIGTERM, ["--hosts-from", "cmd-"]))
        providers = _get(url, "/resource_providers")["resource_providers"]
        hosts = [rp for rp in providers if rp["name"].startswith("cmd-")]
        assert len(hosts) == 3
        inv = _get(url, f"/resource_providers/{hosts[0]['uuid']}/inventories")["inventories"]
        assert inv["VCPU"]["total"] == 4 and inv["MEMORY_MB"]["reserved"] == 1024
        traits = _get(url, f"/resource_providers/{hosts[0]['uuid']}/traits")["traits"]
        assert "CUSTOM_AGENT_TEST" in traits


def _run_agent(
    url: str, nats_url: str, names: object, tag: str, sig: int, hosts: list[str], tmp: Path
) -> None:
    out, err = tmp / "agent.out", tmp / "agent.err"
    args = [
        sys.executable, "-m", "berth.cli", "agent",
        "--url", url, "--nats-url", nats_url, "--name", f"a{tag}",
        *hosts, "--vcpu", "4", "--memory-mb", "8192",
        "--trait", "CUSTOM_AGENT_TEST", "--stats-every", "0.2", "--fetch-timeout", "0.5",
        "--work-stream", names.work_stream, "--delete-stream", names.delete_stream,  # type: ignore[attr-defined]
        "--delete-prefix", names.delete_prefix,  # type: ignore[attr-defined]
        "--queues-bucket", names.queues_bucket,  # type: ignore[attr-defined]
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BERTH_LOG_JSON": "false"}
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            args, stdout=o, stderr=e, cwd=ROOT, env=env, preexec_fn=die_with_parent()
        )
        try:
            _wait_for_line(out, proc, "hosts=3 ", timeout=60)
            proc.send_signal(sig)
            started = time.monotonic()
            assert proc.wait(timeout=15) == 0, err.read_text()[-2000:]
            assert time.monotonic() - started < 8
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "agent.stopped" in err.read_text()
