"""The route table: URL template -> HTTP method -> handler function.

A handler is a plain function ``handler(req, resp, **uri_params)``.  Methods
not listed answer 405 with an ``Allow`` header, as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from berth.api.errors import HTTPError
from berth.api.resources import (
    aggregates,
    allocation_candidates,
    allocations,
    flavors,
    host_state,
    inventories,
    operations,
    providers,
    pull,
    quotas,
    requests,
    reshaper,
    resource_classes,
    root,
    scheduler,
    traits,
    usages,
)

Handler = Callable[..., None]

ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"GET": root.home},
    "/resource_classes": {
        "GET": resource_classes.list_classes,
        "POST": resource_classes.create,
    },
    "/resource_classes/{name}": {
        "GET": resource_classes.show,
        "PUT": resource_classes.update,
        "DELETE": resource_classes.delete,
    },
    "/resource_providers": {"GET": providers.list_providers, "POST": providers.create},
    "/resource_providers/{uuid}": {
        "GET": providers.show,
        "DELETE": providers.delete,
        "PUT": providers.update,
    },
    "/resource_providers/{uuid}/inventories": {
        "GET": inventories.list_inventories,
        "POST": inventories.create,
        "PUT": inventories.replace_all,
        "DELETE": inventories.delete_all,
    },
    "/resource_providers/{uuid}/inventories/{resource_class}": {
        "GET": inventories.show,
        "PUT": inventories.update,
        "DELETE": inventories.delete,
    },
    "/resource_providers/{uuid}/usages": {"GET": usages.provider_usages},
    "/resource_providers/{uuid}/aggregates": {
        "GET": aggregates.show,
        "PUT": aggregates.replace,
    },
    "/resource_providers/{uuid}/allocations": {"GET": allocations.list_for_provider},
    "/allocations": {"POST": allocations.post_many},
    "/allocations/{consumer_uuid}": {
        "GET": allocations.list_for_consumer,
        "PUT": allocations.put_for_consumer,
        "DELETE": allocations.delete_for_consumer,
    },
    "/traits": {"GET": traits.list_traits},
    "/traits/{name}": {"GET": traits.show, "PUT": traits.create, "DELETE": traits.delete},
    "/resource_providers/{uuid}/traits": {
        "GET": traits.list_for_provider,
        "PUT": traits.replace_for_provider,
        "DELETE": traits.delete_for_provider,
    },
    "/usages": {"GET": usages.total_usages},
    "/reshaper": {"POST": reshaper.reshape},
    "/allocation_candidates": {"GET": allocation_candidates.list_candidates},
    # berth's scheduler extension (docs/scheduler.md).
    "/scheduler": {"GET": scheduler.home},
    "/scheduler/select_destinations": {"POST": scheduler.select},
    "/scheduler/flavors": {"GET": flavors.list_flavors, "POST": flavors.create},
    "/scheduler/flavors/{uuid}": {"GET": flavors.show, "DELETE": flavors.delete},
    "/scheduler/hosts": {"GET": host_state.list_hosts},
    "/scheduler/hosts/{provider_uuid}": {
        "GET": host_state.show_host,
        "PUT": host_state.update_host,
    },
    # Host state in namespaces (scheduler 1.3).
    "/scheduler/hosts/{provider_uuid}/state": {"GET": host_state.show_state},
    "/scheduler/hosts/{provider_uuid}/state/{namespace}": {
        "GET": host_state.show_namespace,
        "PUT": host_state.put_namespace,
        "PATCH": host_state.patch_namespace,
        "DELETE": host_state.delete_namespace,
    },
    "/scheduler/aggregates/{uuid}/metadata": {
        "GET": scheduler.show_aggregate,
        "PUT": scheduler.update_aggregate,
    },
    "/scheduler/server_groups": {
        "GET": scheduler.list_groups,
        "POST": scheduler.create_group,
    },
    "/scheduler/server_groups/{uuid}": {
        "GET": scheduler.show_group,
        "DELETE": scheduler.delete_group,
    },
    "/scheduler/server_groups/{uuid}/members/{instance_uuid}": {
        "PUT": scheduler.put_member,
        "DELETE": scheduler.delete_member,
    },
    "/scheduler/quotas/{project_id}": {
        "GET": quotas.show_project,
        "PUT": quotas.update_project,
        "DELETE": quotas.delete_project,
    },
    "/scheduler/quotas/{project_id}/users/{user_id}": {
        "GET": quotas.show_user,
        "PUT": quotas.update_user,
        "DELETE": quotas.delete_user,
    },
    # Pull dispatch (scheduler 1.2; docs/pull.md): clients' requests, agents' batches.
    "/scheduler/requests": {"POST": requests.create},
    "/scheduler/requests/{uuid}": {"GET": requests.show, "DELETE": requests.delete},
    "/scheduler/pull/heartbeat": {"POST": pull.heartbeat},
    "/scheduler/pull/claims": {"POST": pull.claim},
    "/scheduler/pull/active": {"POST": pull.active},
    "/scheduler/pull/deleted": {"POST": pull.deleted},
    "/scheduler/pull/queues": {"GET": pull.list_queues},
    # Operator endpoints (no token needed; see berth.api.middleware.PUBLIC_PATHS).
    "/healthcheck": {"GET": operations.live},
    "/healthcheck/ready": {"GET": operations.ready},
    "/metrics": {"GET": operations.prometheus},
}


class Route:
    """A Falcon resource that dispatches each method to its handler."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.allow = ", ".join(handlers)

    def _dispatch(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        handler = self.handlers.get(req.method)
        if handler is None:
            raise HTTPError(
                405,
                "The method specified is not allowed for this resource.",
                headers={"allow": self.allow},
                code=None,  # type: ignore[arg-type]
            )
        handler(req, resp, **params)

    on_get = on_post = on_put = on_delete = on_patch = _dispatch
    on_head = on_options = on_connect = on_trace = _dispatch
