"""pytest plugin: openstacksdk's own placement functional tests against berth.

Upstream runs them against a devstack cloud named in ``clouds.yaml``; here
every cloud name points at ``BERTH_URL`` with the ``admin_token`` auth type.
What the tests take from devstack is provided: a compute node with VCPU (the
candidates test), an allocation of the admin project (the usages test), and
the current user and project ids, which a Keystone token would carry.
"""

from __future__ import annotations

import os
import uuid

import httpx
from openstack import connection
from openstack.tests.functional import base

base.BaseFunctionalTest._pick_flavor = lambda self: None  # no compute service
base.BaseFunctionalTest._pick_image = lambda self: None  # no image service
connection.Connection.current_user_id = property(lambda self: "admin")  # type: ignore[assignment]
connection.Connection.current_project_id = property(lambda self: "admin")  # type: ignore[assignment]


def _seed(url: str) -> None:
    api = httpx.Client(
        base_url=url, headers={"x-auth-token": "admin", "openstack-api-version": "placement 1.39"}
    )
    rp = api.post("/resource_providers", json={"name": "devstack-compute"}).json()
    inventories = {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 8192}, "DISK_GB": {"total": 100}}
    api.put(
        f"/resource_providers/{rp['uuid']}/inventories",
        json={"resource_provider_generation": 0, "inventories": inventories},
    ).raise_for_status()
    api.put(
        f"/allocations/{uuid.uuid4()}",
        json={
            "allocations": {rp["uuid"]: {"resources": {"VCPU": 1}}},
            "project_id": "admin",
            "user_id": "admin",
            "consumer_generation": None,
            "consumer_type": "INSTANCE",
        },
    ).raise_for_status()


_seed(os.environ["BERTH_URL"])
