"""Several berth hosts, each ``berth serve`` in a network namespace (:mod:`berth.bench.multihost`).

Every test here needs root, iproute2 (``ip netns``) and HAProxy: where one is
missing the tests skip with the reason, or fail when
``BERTH_TEST_REQUIRE_DATABASES=1`` (CI, which installs HAProxy and runs as
root).  Each module is marked ``namespaces``: ``-m "not namespaces"`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import REQUIRE, server_database_url

from berth.bench import multihost

_PROBLEM: list[str | None] = []


def _problem() -> str | None:
    if not _PROBLEM:
        _PROBLEM.append(multihost.unavailable())
    return _PROBLEM[0]


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    """Skip (fail when databases are required) where several hosts cannot run."""
    problem = _problem()
    if problem is None:
        return
    if REQUIRE:
        pytest.fail(f"several berth hosts: {problem}")
    pytest.skip(f"several berth hosts: {problem}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """This session's PostgreSQL database, wiped (the hosts' deployment migrates it)."""
    url = server_database_url("postgresql")
    assert url is not None
    yield url
