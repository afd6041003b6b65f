"""Services own what a process builds over their database: nothing is shared by address."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson
import pytest

from berth import settings as settings_mod
from berth.candidates import service as candidates
from berth.candidates.render import Shape
from berth.candidates.request import Features, parse
from berth.db.engine import Database
from berth.policy import Enforcer
from berth.scheduler import RequestSpec, select_destinations
from berth.services import Lazy, Services
from tests.conftest import fresh_database
from tests.scheduler.conftest import write_cloud


def _hosts_seen(services: Services) -> tuple[int, int]:
    """(hosts the scheduler found, allocation candidates) for one VCPU, from memory."""
    answer = select_destinations(services, RequestSpec({"VCPU": 1}, dry_run=True))
    assert answer.explanation is not None
    request = parse([("resources", "VCPU:1")], Features.at(39))
    body = orjson.loads(candidates.answer(services, request, Shape.at(39)))
    return answer.explanation.found, len(body["allocation_requests"])


def _two_databases(tmp_path: Path) -> dict[str, int]:
    """Two SQLite files with 2 and 3 hosts: url -> host count."""
    counts = {}
    for name, hosts in (("a", 2), ("b", 3)):
        db = fresh_database("sqlite", tmp_path / name)
        write_cloud(db, hosts)
        counts[db.url] = hosts
        db.dispose()
    return counts


def _check_owned(services: Services, hosts: int) -> None:
    index, pipeline = services.candidates_index, services.scheduler_pipeline
    assert index.db is services.db and pipeline.index is index
    assert pipeline.catalog.db is services.db
    assert services.candidates_index is index and services.scheduler_pipeline is pipeline
    assert _hosts_seen(services) == (hosts, hosts)


def test_two_services_never_share_an_index_or_a_pipeline(tmp_path: Path) -> None:
    counts = _two_databases(tmp_path)
    enforcer = Enforcer(True)
    first: Services | None = None
    second: Services | None = None
    urls = list(counts)
    for _ in range(8):
        settings = [settings_mod.load(environ={}, database_url=url) for url in urls]
        dbs = [Database(url) for url in urls]
        # The previous pair goes just before the next one is made, so Python may
        # well hand out the same addresses (caches keyed by id() then mixed them up).
        first = second = None
        first = Services(settings=settings[0], db=dbs[0], enforcer=enforcer)
        second = Services(settings=settings[1], db=dbs[1], enforcer=enforcer)
        _check_owned(first, counts[urls[0]])
        _check_owned(second, counts[urls[1]])
        assert first.candidates_index is not second.candidates_index
        assert first.scheduler_pipeline is not second.scheduler_pipeline
        first.close()
        second.close()


def test_one_index_and_pipeline_per_services_across_threads(sqlite_db: Database) -> None:
    settings = settings_mod.load(environ={}, database_url=sqlite_db.url)
    services = Services(settings=settings, db=sqlite_db, enforcer=Enforcer(True))
    start = threading.Barrier(8)
    seen: list[tuple[int, int]] = []

    def grab() -> None:
        start.wait()
        seen.append((id(services.candidates_index), id(services.scheduler_pipeline)))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen) == 8


def test_close_drops_what_services_built(sqlite_db: Database) -> None:
    settings = settings_mod.load(environ={}, database_url=sqlite_db.url)
    services = Services(settings=settings, db=sqlite_db, enforcer=Enforcer(True))
    index = services.candidates_index
    services.close()
    assert services.candidates_index is not index  # built again if used after close


def test_a_forked_child_builds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    lazy = Lazy(object)
    parent = lazy.get()
    assert lazy.get() is parent
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a child after fork()
    child = lazy.get()
    assert child is not parent and lazy.get() is child
