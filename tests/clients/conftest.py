"""Real OpenStack clients against a real berth server.

Two servers are started once per session: one with the default ``noauth2``
strategy (the client sends ``--os-auth-type admin_token --os-token admin``)
and one with ``BERTH_AUTH_STRATEGY=admin_token`` (the client sends
``--os-auth-type none``, whose token is the literal ``notused``).
``BERTH_TEST_CLIENTS_DATABASE_URL`` runs both on that database instead of
fresh SQLite files (the tests name everything uniquely, so they can share it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from server import running_berth

from .helpers import OpenStackCLI, patch_client_cache

pytest.importorskip("openstackclient", reason="python-openstackclient is not installed")
pytest.importorskip("osc_placement", reason="osc-placement is not installed")
patch_client_cache()

DATABASE_URL = os.environ.get("BERTH_TEST_CLIENTS_DATABASE_URL") or None


@pytest.fixture(scope="session")
def berth_noauth2() -> Iterator[str]:
    """A berth server with the default noauth2 strategy."""
    with running_berth(database_url=DATABASE_URL) as url:
        yield url


@pytest.fixture(scope="session")
def berth_admin_token() -> Iterator[str]:
    """A berth server that treats every token as admin."""
    with running_berth(DATABASE_URL, env={"BERTH_AUTH_STRATEGY": "admin_token"}) as url:
        yield url


AUTHS = ["admin_token", "none"]


def open_cli(request: pytest.FixtureRequest, auth: str) -> OpenStackCLI:
    """The ``openstack`` CLI skipping Keystone one way (``auth``), against its server."""
    if auth == "admin_token":
        url = request.getfixturevalue("berth_noauth2")
        args = ["--os-auth-type", "admin_token", "--os-token", "admin"]
    else:
        url = request.getfixturevalue("berth_admin_token")
        args = ["--os-auth-type", "none"]
    return OpenStackCLI(auth_args=[*args, "--os-endpoint", url])


@pytest.fixture(params=AUTHS)
def cli(request: pytest.FixtureRequest) -> OpenStackCLI:
    """The ``openstack`` CLI with each way of skipping Keystone."""
    return open_cli(request, request.param)
