"""Parsing: scheduler settings, request bodies and flavors."""

from __future__ import annotations

from typing import Any

import pytest

from berth.placement import errors
from berth.scheduler.options import MetricLimit
from berth.scheduler.spec import RequestSpec, ServerGroupSpec, from_body, parse_flavor
from tests.scheduler.helpers import config


def test_defaults_parse() -> None:
    c = config()
    assert c.filters[0] == "host_enabled"
    assert dict(c.weighers)["ram"] == 1.0
    assert c.partitioning == "none"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"filters": "host_enabled,bogus"}, "scheduler_filters: unknown ['bogus']"),
        ({"weighers": "ram=x"}, "scheduler_weighers: bad multiplier"),
        ({"weighers": "nope=1"}, "scheduler_weighers: unknown ['nope']"),
        ({"metric_limits": "cpu.percent~3"}, "no comparison"),
        ({"metric_limits": "cpu.percent<=high"}, "bad bound"),
        ({"host_subset_size": 0}, "at least 1"),
        ({"worker_count": 4, "worker_index": 4}, "scheduler_worker_index"),
        ({"partitioning": "random"}, "none, modulo or consistent"),
    ],
)
def test_bad_settings_say_which(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config(**overrides)


@pytest.mark.parametrize(
    ("text", "limits"),
    [
        ("cpu.percent<=90", [MetricLimit("cpu.percent", "<=", 90.0)]),
        ("a>1, b==2", [MetricLimit("a", ">", 1.0), MetricLimit("b", "==", 2.0)]),
        ("", []),
    ],
)
def test_metric_limits(text: str, limits: list[MetricLimit]) -> None:
    assert list(config(metric_limits=text).metric_limits) == limits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VCPU=2,MEMORY_MB=4096,DISK_GB=20", {"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}),
        ("vcpu:1", {"VCPU": 1}),
    ],
)
def test_parse_flavor(text: str, expected: dict[str, int]) -> None:
    assert parse_flavor(text) == expected


@pytest.mark.parametrize("text", ["VCPU", "VCPU=x", "VCPU=0", "=3"])
def test_parse_flavor_rejects(text: str) -> None:
    with pytest.raises(errors.InvalidInput):
        parse_flavor(text)


def test_from_body_full() -> None:
    spec = from_body(
        {
            "flavor": {"resources": {"VCPU": 1}, "extra_specs": {"ssd": "true"}},
            "num_instances": 2,
            "required_traits": ["CUSTOM_GPU"],
            "member_of": [["a"]],
            "server_group": {
                "uuid": "g",
                "policy": "anti-affinity",
                "rules": {"max_server_per_host": 2},
            },
            "scheduler_hints": {"same_host": ["x"], "different_host": ["y"]},
            "ignore_hosts": ["cn1"],
            "all_or_nothing": False,
            "dry_run": True,
        }
    )
    assert spec.num_instances == 2 and len(spec.instance_uuids) == 2
    assert spec.server_group == ServerGroupSpec("g", "anti-affinity", 2)
    assert spec.same_host == ["x"] and spec.different_host == ["y"]
    assert spec.member_of == [{"a"}] and spec.required_traits == {"CUSTOM_GPU"}
    assert spec.aggregate_extra_specs == [("ssd", "true")]
    assert not spec.all_or_nothing and spec.dry_run


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resources": {}},
        {"resources": {"VCPU": 1}, "num_instances": 3, "instance_uuids": ["a", "b"]},
        {"resources": {"VCPU": 1}, "instance_uuids": ["a", "a"]},
        {"resources": {"VCPU": 1}, "required_traits": {"T"}, "forbidden_traits": {"T"}},
    ],
)
def test_spec_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidInput):
        RequestSpec(**kwargs)
