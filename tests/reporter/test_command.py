"""``berth host report`` as a process against a real ``berth serve`` (SQLite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.bench import launch
from tests.server import ROOT, free_port, running_berth

pytestmark = pytest.mark.slow
SCHEDULER = "scheduler 1.3"
# A reporter's start (the interpreter, ``berth.cli``'s imports: about 2.5 s of CPU without
# bytecode caches, then finding its hosts) is CPU-bound: 20 s and more on this 2-core machine
# under the parallel suite's load.  Waits that include it only catch a reporter that never
# starts; what the tests bound is measured from ``reporter.started`` (or from a signal).
STARTUP_S = 120.0


def _call(url: str, method: str, path: str, body: Any = None, version: str = "placement 1.39"):  # type: ignore[no-untyped-def]
    req = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "x-auth-token": "admin",
            "openstack-api-version": version,
            "content-type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _state(url: str, uuid: str) -> dict[str, Any] | None:
    try:
        return _call(url, "GET", f"/scheduler/hosts/{uuid}/state/compute", version=SCHEDULER)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _providers(url: str, prefix: str, count: int) -> list[str]:
    return [
        _call(url, "POST", "/resource_providers", {"name": f"{prefix}{i:04d}"})["uuid"]
        for i in range(count)
    ]


def _reporter(tmp: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp / "report.out", tmp / "report.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BERTH_LOG_JSON": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "berth.cli", "host", "report", *args],
        stdout=out.open("wb"), stderr=err.open("wb"), cwd=ROOT, env=env,
    )  # fmt: skip
    return proc, out, err


def _wait(what: Callable[[], Any], proc: subprocess.Popen[bytes], err: Path, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"reporter exited with {proc.returncode}: {err.read_text()[-2000:]}")
        time.sleep(0.1)
    pytest.fail(f"not within {timeout}s: {err.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes], sig: int, err: Path) -> dict[str, Any]:
    proc.send_signal(sig)
    started = time.monotonic()
    try:
        assert proc.wait(timeout=10) == 0, err.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Prompt, not instant: a loaded 2-core machine (the parallel suite) took 2.2 s once.
    assert time.monotonic() - started < 5.0
    return json.loads((err.parent / "report.out").read_text().strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_berth() as base:
        yield base


def _sent_twice(url: str, uuid: str) -> dict[str, Any] | None:
    state = _state(url, uuid)
    return state if state and state["generation"] >= 2 else None


def test_real_mode_reports_this_machine_and_stops_on_sigterm(url: str, tmp_path: Path) -> None:
    (uuid,) = _providers(url, "real-", 1)
    proc, _, err = _reporter(tmp_path, "--url", url, "--host", uuid, "--interval", "0.5")
    try:
        state = _wait(lambda: _sent_twice(url, uuid), proc, err, STARTUP_S)
    finally:
        stats = _stop(proc, signal.SIGTERM, err)
    metrics = state["state"]["metrics"]
    assert set(metrics) == {"cpu_util", "load_1m", "memory_used_mb", "memory_total_mb",
                            "disk_free_gb"}  # fmt: skip
    assert state["received_at"].endswith("Z")
    assert stats["hosts"] == 1 and stats["sent"] >= 2 and stats["failed"] == 0
    assert "reporter.stopped" in err.read_text()


def test_simulated_hosts_report_and_stop_on_sigint(url: str, tmp_path: Path) -> None:
    """40 hosts every second for 3 s (this shared 2-core machine's SQLite server does
    about 60 writes/s under load; the reporter's own pacing is tested in-memory)."""
    uuids = _providers(url, "sim-", 40)
    _providers(url, "other-", 2)
    # --duration counts seconds of sending: the process must end soon after them, dropping
    # the sends in flight rather than waiting them out (a --timeout longer than the slack).
    duration, timeout, slack = 3, 30, 20
    assert slack < timeout
    proc, out, err = _reporter(
        tmp_path, "--url", url, "--simulate", "40", "--prefix", "sim-", "--interval", "1",
        "--duration", str(duration), "--timeout", str(timeout),
    )  # fmt: skip
    try:
        _wait(lambda: "reporter.started" in err.read_text(), proc, err, STARTUP_S)
        # Seen at or after its start, so the bound is not loosened by a late look.
        try:
            assert proc.wait(timeout=duration + slack) == 0, err.read_text()[-2000:]
        except subprocess.TimeoutExpired:
            pytest.fail(f"running {duration + slack}s after it started: {err.read_text()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stats = json.loads(out.read_text().strip().splitlines()[-1])
    hosts = _call(url, "GET", "/scheduler/hosts?namespace=compute", version=SCHEDULER)
    assert stats["failed"] == 0 and stats["hosts"] == 40
    assert 80 <= stats["sent"] <= 160, stats
    reported = {u for u in hosts["hosts"] if u not in uuids}
    assert set(uuids) <= set(hosts["hosts"]) and not reported - _real_hosts(url)
    proc, _, err = _reporter(tmp_path, "--url", url, "--simulate", "3", "--interval", "1")
    _wait(lambda: "reporter.started" in err.read_text(), proc, err, STARTUP_S)
    time.sleep(0.5)
    assert _stop(proc, signal.SIGINT, err)["hosts"] == 3  # the first 3 by name


def _real_hosts(url: str) -> set[str]:
    """Providers the real-mode test may have reported."""
    found = _call(url, "GET", "/resource_providers")["resource_providers"]
    return {rp["uuid"] for rp in found if rp["name"].startswith("real-")}


def test_a_server_outage_is_survived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server goes away for a while and comes back on the same port and database: the
    reporter logs the outage once, never exits, and resumes."""
    port = free_port()
    monkeypatch.setattr(launch, "free_port", lambda: port)
    database = f"sqlite:///{tmp_path}/berth.sqlite"
    with running_berth(database) as url:
        (uuid,) = _providers(url, "back-", 1)
        proc, _, err = _reporter(
            tmp_path, "--url", url, "--host", uuid, "--interval", "0.3", "--max-backoff", "0.5"
        )  # fmt: skip
        _wait(lambda: _state(url, uuid), proc, err, STARTUP_S)
    try:
        time.sleep(1.5)
        assert proc.poll() is None, err.read_text()[-2000:]
        with running_berth(database) as url:
            before = (_state(url, uuid) or {})["generation"]
            _wait(lambda: (_state(url, uuid) or {})["generation"] > before + 1, proc, err, 20)
            stats = _stop(proc, signal.SIGTERM, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = err.read_text()
    assert log.count("reporter.server_unavailable") == 1, log[-3000:]
    assert log.count("reporter.server_back") == 1
    assert stats["failed"] >= 1
