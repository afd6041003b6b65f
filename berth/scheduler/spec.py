"""What a caller asks the scheduler for: a :class:`RequestSpec`.

One spec places ``num_instances`` instances of one flavor.  It is built from
the JSON body of ``POST /scheduler/select_destinations`` (already validated
against :mod:`berth.schemas.scheduler`), from the command line
(:func:`parse_flavor`), or directly in Python.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.placement import errors

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")
HARD_POLICIES = ("affinity", "anti-affinity")
# Flavor extra specs matched against aggregate metadata (Nova's scope).
AGGREGATE_SCOPE = "aggregate_instance_extra_specs:"


@dataclass(frozen=True)
class ServerGroupSpec:
    """A server group by uuid; policy and rule create it when it does not exist."""

    uuid: str
    policy: str | None = None
    max_server_per_host: int | None = None
    name: str | None = None


@dataclass
class RequestSpec:
    """Resources per instance (the flavor) and every constraint on where they go."""

    resources: dict[str, int]
    extra_specs: dict[str, str] = field(default_factory=dict)
    required_traits: set[str] = field(default_factory=set)
    forbidden_traits: set[str] = field(default_factory=set)
    member_of: list[set[str]] = field(default_factory=list)
    availability_zone: str | None = None
    num_instances: int = 1
    instance_uuids: list[str] = field(default_factory=list)
    project_id: str | None = None
    user_id: str | None = None
    server_group: ServerGroupSpec | None = None
    same_host: list[str] = field(default_factory=list)
    different_host: list[str] = field(default_factory=list)
    ignore_hosts: list[str] = field(default_factory=list)
    all_or_nothing: bool = True
    dry_run: bool = False
    explain: bool = False
    alternates: int | None = None  # None: the scheduler_alternates setting

    def __post_init__(self) -> None:
        if not self.instance_uuids:
            self.instance_uuids = [str(uuidlib.uuid4()) for _ in range(self.num_instances)]
        elif self.num_instances in (1, len(self.instance_uuids)):
            self.num_instances = len(self.instance_uuids)
        else:
            raise errors.InvalidInput(
                f"num_instances {self.num_instances} does not match "
                f"{len(self.instance_uuids)} instance_uuids"
            )
        if len(set(self.instance_uuids)) != len(self.instance_uuids):
            raise errors.InvalidInput("instance_uuids must be unique")
        if not self.resources:
            raise errors.InvalidInput("the flavor must ask for at least one resource")
        clash = self.required_traits & self.forbidden_traits
        if clash:
            raise errors.InvalidInput(
                f"traits both required and forbidden: {', '.join(sorted(clash))}"
            )

    @property
    def aggregate_extra_specs(self) -> list[tuple[str, str]]:
        """Extra specs to match against aggregate metadata (scoped or bare keys)."""
        out = []
        for key, value in self.extra_specs.items():
            if key.startswith(AGGREGATE_SCOPE):
                out.append((key.removeprefix(AGGREGATE_SCOPE), value))
            elif ":" not in key:
                out.append((key, value))
        return out


def _group(value: Any) -> ServerGroupSpec | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ServerGroupSpec(uuid=value)
    rules = value.get("rules") or {}
    return ServerGroupSpec(
        uuid=value["uuid"],
        policy=value.get("policy"),
        max_server_per_host=rules.get("max_server_per_host"),
        name=value.get("name"),
    )


def from_body(body: Mapping[str, Any]) -> RequestSpec:
    """A spec from the (schema-validated) JSON body of select_destinations."""
    flavor = body["flavor"]
    hints = body.get("scheduler_hints") or {}
    return RequestSpec(
        resources=dict(flavor["resources"]),
        extra_specs=dict(flavor.get("extra_specs") or {}),
        required_traits=set(body.get("required_traits") or ()),
        forbidden_traits=set(body.get("forbidden_traits") or ()),
        member_of=[set(any_of) for any_of in body.get("member_of") or ()],
        availability_zone=body.get("availability_zone"),
        num_instances=body.get("num_instances", 1),
        instance_uuids=list(body.get("instance_uuids") or ()),
        project_id=body.get("project_id"),
        user_id=body.get("user_id"),
        server_group=_group(body.get("server_group")),
        same_host=list(hints.get("same_host") or ()),
        different_host=list(hints.get("different_host") or ()),
        ignore_hosts=list(body.get("ignore_hosts") or ()),
        all_or_nothing=body.get("all_or_nothing", True),
        dry_run=body.get("dry_run", False),
        explain=body.get("explain", False),
        alternates=body.get("alternates"),
    )


def parse_flavor(text: str) -> dict[str, int]:
    """``VCPU=2,MEMORY_MB=4096`` (``:`` works too) as a resources dict."""
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, amount = part.strip().replace(":", "=").partition("=")
        if not sep or not name:
            raise errors.InvalidInput(f"bad flavor part {part!r}: expected CLASS=AMOUNT")
        try:
            out[name.strip().upper()] = int(amount)
        except ValueError:
            raise errors.InvalidInput(f"bad amount in {part!r}") from None
        if out[name.strip().upper()] < 1:
            raise errors.InvalidInput(f"amount must be at least 1 in {part!r}")
    return out
