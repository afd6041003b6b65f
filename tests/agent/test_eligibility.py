"""Eligibility: one host, one instance's resources and traits -> a reason or None."""

from __future__ import annotations

import pytest

from berth.agent import eligibility as el
from berth.agent.model import Inventory
from tests.agent.helpers import host

CASES = [
    # (name, host kwargs, resources, required, forbidden, reason)
    ("empty host fits", {}, {"VCPU": 2, "MEMORY_MB": 2048}, (), (), None),
    ("exactly full after", {"used": {"VCPU": 6}}, {"VCPU": 2}, (), (), None),
    ("one over", {"used": {"VCPU": 7}}, {"VCPU": 2}, (), (), el.NO_ROOM),
    # 16384 - 1024 reserved = 15360 usable
    ("reserved counts", {"used": {"MEMORY_MB": 14336}}, {"MEMORY_MB": 1024}, (), (), None),
    ("reserved refuses", {"used": {"MEMORY_MB": 14337}}, {"MEMORY_MB": 1024}, (), (), el.NO_ROOM),
    ("unknown class", {}, {"DISK_GB": 1}, (), (), el.NO_INVENTORY),
    ("required trait present", {"traits": ("CUSTOM_GPU",)}, {"VCPU": 1}, ("CUSTOM_GPU",), (), None),
    ("required trait missing", {}, {"VCPU": 1}, ("CUSTOM_GPU",), (), el.MISSING_TRAIT),
    (
        "forbidden trait present",
        {"traits": ("CUSTOM_X",)},
        {"VCPU": 1},
        (),
        ("CUSTOM_X",),
        el.FORBIDDEN_TRAIT,
    ),
    ("forbidden trait absent", {}, {"VCPU": 1}, (), ("CUSTOM_X",), None),
    (
        "traits before capacity",
        {"used": {"VCPU": 8}},
        {"VCPU": 1},
        ("CUSTOM_GPU",),
        (),
        el.MISSING_TRAIT,
    ),
    (
        "ratio",
        {"VCPU": Inventory(8, allocation_ratio=2.0), "used": {"VCPU": 15}},
        {"VCPU": 1},
        (),
        (),
        None,
    ),
    (
        "ratio full",
        {"VCPU": Inventory(8, allocation_ratio=2.0), "used": {"VCPU": 16}},
        {"VCPU": 1},
        (),
        (),
        el.NO_ROOM,
    ),
    ("below min_unit", {"VCPU": Inventory(8, min_unit=2)}, {"VCPU": 1}, (), (), el.BAD_UNIT),
    ("above max_unit", {"VCPU": Inventory(8, max_unit=4)}, {"VCPU": 5}, (), (), el.BAD_UNIT),
    ("off step_size", {"VCPU": Inventory(8, step_size=2)}, {"VCPU": 3}, (), (), el.BAD_UNIT),
    ("on step_size", {"VCPU": Inventory(8, step_size=2)}, {"VCPU": 4}, (), (), None),
]


@pytest.mark.parametrize(
    ("kwargs", "resources", "required", "forbidden", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_refusal(
    kwargs: dict, resources: dict, required: tuple, forbidden: tuple, reason: str | None
) -> None:
    h = host(**kwargs)
    assert el.refusal(h, resources, frozenset(required), frozenset(forbidden)) == reason
