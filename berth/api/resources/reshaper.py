"""``POST /reshaper`` (1.30+): move inventory and allocations in one step."""

from __future__ import annotations

from typing import Any

import falcon

from berth.api.errors import bad_request, conflict
from berth.api.resources.steps import since, versioned_body
from berth.api.util import ctx, send_empty
from berth.placement import errors, reshaper
from berth.placement.inventories import Inventory
from berth.placement.write.capacity import InvalidAllocation, InventoryInUse
from berth.placement.write.replace import ConsumerAllocations
from berth.schemas import reshaper as schemas


def reshape(req: falcon.Request, resp: falcon.Response) -> None:
    """POST /reshaper: replace inventories and allocations together."""
    c = ctx(req)
    since(req, 30)
    data = versioned_body(req, "placement:reshaper:reshape", schemas.RESHAPE)
    inventories, requests = _inventories(data), _allocations(data)
    try:
        reshaper.reshape(
            c.services.db,
            inventories,
            requests,
            attempts=c.services.settings.allocation_conflict_retry_count,
        )
    except errors.StaleGeneration:
        raise
    except errors.NotFound as exc:
        raise bad_request(f"malformed reshaper data: {exc.message}") from None
    except InventoryInUse as exc:
        raise conflict(f"update conflict: {exc.message}", errors.INVENTORY_INUSE) from None
    except InvalidAllocation as exc:
        raise conflict(f"Unable to allocate inventory: {exc.message}") from None
    except errors.ConcurrentUpdate as exc:
        raise conflict(f"update conflict: {exc.message}", errors.CONCURRENT_UPDATE) from None
    send_empty(resp)


def _inventories(data: dict[str, Any]) -> list[reshaper.ProviderInventories]:
    """The body's new inventories, per provider."""
    return [
        reshaper.ProviderInventories(
            uuid=uuid,
            generation=body["resource_provider_generation"],
            inventories=[Inventory.from_body(rc, r) for rc, r in body["inventories"].items()],
        )
        for uuid, body in data["inventories"].items()
    ]


def _allocations(data: dict[str, Any]) -> list[ConsumerAllocations]:
    """The body's new allocations, per consumer."""
    return [
        ConsumerAllocations(
            uuid=uuid,
            resources={rp: dict(a["resources"]) for rp, a in body["allocations"].items()},
            project_id=body["project_id"],
            user_id=body["user_id"],
            generation=body["consumer_generation"],
            consumer_type=body.get("consumer_type"),
        )
        for uuid, body in data["allocations"].items()
    ]
