"""The reporter's loops against an in-memory server: pacing, generations, outages."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import pytest
import structlog

from berth.reporter import sender
from berth.reporter.client import StateClient
from berth.reporter.options import ReportOptions
from berth.reporter.runner import report_until
from berth.reporter.sender import HostReporter, Outage, Pace
from berth.reporter.simulate import simulated_reporters
from berth.reporter.stats import Stats
from tests.reporter.fake import FakeStateServer


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """structlog as it starts, and the sender's logger made anew: a test of this worker that
    configured berth's logging left a level filter (``ERROR`` for the bench's in-process
    app) and loggers bound on first use, neither of which ``capture_logs`` replaces."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(sender, "log", structlog.get_logger("berth.reporter"))
    yield
    structlog.configure(**saved)


def _uuids(n: int) -> list[str]:
    return [f"00000000-0000-0000-0000-{i:012d}" for i in range(n)]


async def _simulate(
    server: FakeStateServer, hosts: int, interval: float, seconds: float, **options: float
) -> Stats:
    client = StateClient("http://berth", wire=server)
    opts = ReportOptions(simulate=hosts, interval=interval, seed=7, **options)  # type: ignore[arg-type]
    stats = Stats(interval=interval)
    uuids = _uuids(hosts)
    await client.prime(opts.namespace, uuids)
    reporters = simulated_reporters(client, uuids, opts, stats, asyncio.Semaphore(64))
    await report_until(reporters, stats, asyncio.Event(), seconds)
    await client.close()
    return stats


def test_simulated_hosts_send_at_the_rate_asked() -> None:
    """200 hosts every second for 3 s: about 600 sends, spread (not one burst per interval)."""
    server = FakeStateServer()
    stats = asyncio.run(_simulate(server, 200, 1.0, 3.0))
    assert stats.failed == 0
    assert 500 <= stats.sent <= 700, stats.summary()
    assert server.patches == stats.sent
    assert server.reads == 1  # one GET /scheduler/hosts primed every generation
    assert len(server.states) == 200
    summary = stats.summary()
    assert summary["p50_ms"] is not None and summary["expected_per_s"] == 200.0


def test_a_conflict_is_resolved_by_reading_the_generation_again() -> None:
    server = FakeStateServer()
    server.generations[(_uuids(1)[0], "compute")] = 5  # someone else wrote before we started

    async def scenario() -> int:
        client = StateClient("http://berth", wire=server)
        first = await client.patch(_uuids(1)[0], "compute", {"metrics": {"a": 1}})
        server.conflicts = 1
        second = await client.patch(_uuids(1)[0], "compute", {"metrics": {"a": 2}})
        await client.close()
        assert first == 6
        return second

    assert asyncio.run(scenario()) == 8  # 6, the other writer's 7, ours 8
    assert server.states[(_uuids(1)[0], "compute")] == {"metrics": {"a": 2}}


def test_an_outage_is_survived_logged_once_and_sending_resumes(fresh_log: None) -> None:
    server = FakeStateServer(down=True)
    stats = Stats(interval=0.1)

    async def scenario() -> None:
        client = StateClient("http://berth", wire=server)
        sources = simulated_reporters(
            client, _uuids(5), ReportOptions(simulate=5, interval=0.1, max_backoff=0.2),
            stats, asyncio.Semaphore(8),
        )  # fmt: skip
        tasks = [asyncio.create_task(r.run(d)) for r, d in sources]
        await asyncio.sleep(1.0)
        assert stats.failed > 5 and stats.sent == 0
        server.down = False
        await asyncio.sleep(1.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(scenario())
    events = [entry["event"] for entry in logs]
    assert events.count("reporter.server_unavailable") == 1
    assert events.count("reporter.server_back") == 1
    assert stats.sent >= 20  # 5 hosts, 10 a second each, for most of a second


@pytest.mark.parametrize(("failures", "low", "high"), [(1, 0.25, 0.5), (3, 1.0, 2.0), (20, 2.5, 5)])
def test_backoff_doubles_up_to_its_ceiling(failures: int, low: float, high: float) -> None:
    pace = Pace(interval=10, max_backoff=5)
    waits = [pace.backoff(failures, random.Random(i)) for i in range(50)]
    assert all(low <= w <= high for w in waits)


def test_a_refusal_is_logged_once_per_host_and_is_not_an_outage(fresh_log: None) -> None:
    server = FakeStateServer(missing={"gone"})

    async def scenario() -> Outage:
        client = StateClient("http://berth", wire=server)
        outage = Outage()
        reporter = HostReporter(
            client, "gone", "compute", _Constant(), Pace(0.05), Stats(), outage,
            asyncio.Semaphore(1),
        )  # fmt: skip
        task = asyncio.create_task(reporter.run(0))
        started = time.monotonic()
        while reporter.stats.failed < 3 and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        return outage

    with structlog.testing.capture_logs() as logs:
        outage = asyncio.run(scenario())
    assert [e["event"] for e in logs] == ["reporter.refused"]
    assert outage.since is None


class _Constant:
    def sample(self) -> dict[str, float]:
        return {"x": 1.0}
