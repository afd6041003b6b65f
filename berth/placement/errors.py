"""Domain errors of the placement model.

The hierarchy (HTTP status is decided only at the API edge, in
``berth.api.errors``)::

    PlacementError
    ├── NotFound            the thing named does not exist
    ├── Conflict            the request clashes with the current state
    │   └── ConcurrentUpdate    a generation compare-and-swap was lost
    │       └── StaleGeneration     the generation the client sent is not current
    ├── InvalidInput        the request is well formed but not acceptable
    ├── TooLarge            what the request would store is over a size limit
    ├── NotAuthorized       policy forbids the action
    └── Unavailable         a service the request needs (NATS) cannot be reached now

Each carries a human message and a Placement error ``code``.
"""

from __future__ import annotations

DEFAULT_CODE = "placement.undefined_code"
INVENTORY_INUSE = "placement.inventory.inuse"
CONCURRENT_UPDATE = "placement.concurrent_update"
DUPLICATE_NAME = "placement.duplicate_name"
PROVIDER_IN_USE = "placement.resource_provider.inuse"
PROVIDER_CANNOT_DELETE_PARENT = "placement.resource_provider.cannot_delete_parent"
RESOURCE_PROVIDER_NOT_FOUND = "placement.resource_provider.not_found"
ILLEGAL_DUPLICATE_QUERYPARAM = "placement.query.duplicate_key"
QUERYPARAM_BAD_VALUE = "placement.query.bad_value"
QUERYPARAM_MISSING_VALUE = "placement.query.missing_value"
UNAVAILABLE = "berth.unavailable"


class PlacementError(Exception):
    """Base of every domain error: a message and a Placement error code."""

    default_code = DEFAULT_CODE

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotFound(PlacementError):
    """The named object does not exist."""


class Conflict(PlacementError):
    """The request conflicts with the current state."""


class ConcurrentUpdate(Conflict):
    """Another writer changed a generation first."""

    default_code = CONCURRENT_UPDATE


class StaleGeneration(ConcurrentUpdate):
    """A generation the client sent is not the current one: answered at once, never retried."""


class InvalidInput(PlacementError):
    """The request is syntactically fine but semantically unacceptable."""


class TooLarge(PlacementError):
    """What the request would store is over a size limit."""


class NotAuthorized(PlacementError):
    """Policy does not allow the action."""


class Unavailable(PlacementError):
    """A service the request needs (the NATS server of pull dispatch) cannot be reached now."""

    default_code = UNAVAILABLE
