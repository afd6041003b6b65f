"""The per-request context: who is asking, at which microversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth.api.microversion import Version
    from berth.services import Services


@dataclass
class Credentials:
    """The caller as the auth middleware saw it."""

    user_id: str | None = None
    project_id: str | None = None
    roles: list[str] = field(default_factory=list)
    system_scope: str | None = None

    def policy_values(self) -> dict[str, object]:
        """Credentials in the form policy rules check."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": [r.lower() for r in self.roles],
            "system_scope": self.system_scope,
        }


class RequestContext:
    """Attached to every Falcon request as ``req.context``."""

    request_id: str
    version: Version
    credentials: Credentials
    services: Services

    def __init__(self) -> None:
        self.request_id = ""
        self.credentials = Credentials()
        # Whether to send "vary: openstack-api-version" (the reference omits
        # it on errors raised outside its handlers).
        self.vary = True
        self.cors_preflight = False

    def want(self, minor: int) -> bool:
        """True when the request's microversion is at least 1.<minor>."""
        return bool(self.version.matches((1, minor)))
