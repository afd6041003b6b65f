"""Query parsing: groups by suffix, request-wide parameters, the reference's errors."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from berth.api.errors import from_domain
from berth.candidates.request import Features, parse
from berth.qparams import InvalidQuery

AGG = "7a4b8b7e-4f6a-4a6e-9d0e-0b1f5b2c9a11"
RP = "5e3b2a1c-1111-4a6e-9d0e-0b1f5b2c9a11"


def _parse(query: str, minor: int = 39):  # type: ignore[no-untyped-def]
    return parse(parse_qsl(query, keep_blank_values=True), Features.at(minor))


def test_groups_keyed_by_suffix_in_query_order() -> None:
    request = _parse(
        f"resources_B=VCPU:1&resources=DISK_GB:5&required=in:CUSTOM_A,CUSTOM_B"
        f"&required=!CUSTOM_C&member_of=in:{AGG}&member_of=!{AGG}&in_tree={RP}"
        "&resources_A=SRIOV_NET_VF:1&group_policy=isolate&limit=3"
    )
    assert list(request.groups) == ["_B", "", "_A"]
    unsuffixed = request.groups[""]
    assert unsuffixed.resources == {"DISK_GB": 5}
    assert unsuffixed.required == [{"CUSTOM_A", "CUSTOM_B"}]
    assert unsuffixed.forbidden == {"CUSTOM_C"}
    assert unsuffixed.member_of == [{AGG}]
    assert unsuffixed.forbidden_aggs == {AGG}
    assert unsuffixed.in_tree == RP
    assert not unsuffixed.use_same_provider and request.groups["_A"].use_same_provider
    assert (request.group_policy, request.limit) == ("isolate", 3)


def test_before_1_39_only_the_last_required_counts() -> None:
    request = _parse("resources=VCPU:1&required=CUSTOM_A&required=CUSTOM_B", minor=38)
    assert request.groups[""].required == [{"CUSTOM_B"}]


def test_root_required_and_same_subtree() -> None:
    request = _parse(
        "resources1=VCPU:1&required2=CUSTOM_X&root_required=CUSTOM_A,!CUSTOM_B"
        "&same_subtree=1,2&group_policy=none"
    )
    assert (request.root_required, request.root_forbidden) == ({"CUSTOM_A"}, {"CUSTOM_B"})
    assert request.same_subtrees == [{"1", "2"}]
    assert request.groups["2"].resources == {}


@pytest.mark.parametrize(
    ("query", "minor", "message", "code"),
    [
        (
            "resources=VCPU:1&root_required=A&root_required=B",
            35,
            "Query parameter 'root_required' may be specified only once.",
            "placement.query.duplicate_key",
        ),
        (
            "resources=VCPU:1&root_required=CUSTOM_A,!CUSTOM_A",
            35,
            "Conflicting required and forbidden traits found in root_required: CUSTOM_A",
            "placement.query.bad_value",
        ),
        (
            "resources=VCPU:1&root_required=in:CUSTOM_A",
            39,
            "The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since microversion 1.39",
            None,
        ),
        (
            "resources1=VCPU:1&same_subtree=1,",
            36,
            "Empty string (unsuffixed group) can not be specified in `same_subtree` ",
            "placement.query.bad_value",
        ),
        (
            "required1=CUSTOM_A",
            36,
            "There must be at least one resources or resources[$S] parameter.",
            "placement.query.missing_value",
        ),
        (
            "resources=VCPU:1&required1=CUSTOM_A",
            36,
            "Resourceless suffixed group request should be specified in `same_subtree` "
            "query param: bad group(s) - ['1'].",
            "placement.query.bad_value",
        ),
        (
            "resources1=VCPU:1&same_subtree=1,7",
            36,
            "Real suffixes should be specified in `same_subtree`: ['7'] not found in ['1'].",
            "placement.query.bad_value",
        ),
        (
            "resources=VCPU:1&required1=CUSTOM_A",
            35,
            "All traits parameters must be associated with resources.  "
            "Found the following orphaned traits keys: required1",
            None,
        ),
        (
            f"resources=VCPU:1&member_of2={AGG}",
            35,
            "Found the following orphaned member_of keys: member_of2",
            None,
        ),
        (f"resources=VCPU:1&in_tree3={RP}", 35, "All request groups must specify resources.", None),
        (
            "resources=VCPU:1&required=CUSTOM_A,!CUSTOM_A",
            35,
            "Conflicting required and forbidden traits found in the following traits keys: "
            "required: (CUSTOM_A)",
            None,
        ),
        (
            "resources1=VCPU:1&resources2=VCPU:1",
            25,
            'The "group_policy" parameter is required when specifying more than one '
            '"resources{N}" parameter.',
            None,
        ),
        ("resources=VCPU:1&in_tree=nope", 31, "Expected 'in_tree' parameter to be a format", None),
        ("resources=VCPU:0", 31, "Requested resource VCPU requires amount >= 1. Got: 0.", None),
    ],
)
def test_errors(query: str, minor: int, message: str, code: str | None) -> None:
    with pytest.raises(InvalidQuery) as caught:
        _parse(query, minor)
    # The parser raises a domain error; the API's table makes it this 400.
    answer = from_domain(caught.value)
    assert (answer.status, answer.vary) == (400, True)
    assert message in answer.message
    assert answer.code == (code or "placement.undefined_code")
