"""The quota rule, table-driven (no database)."""

from __future__ import annotations

import pytest

from berth.scheduler.quotas import Excess, QuotaExceeded, Scope, Usage, judge

P = Scope("p1")
U = Scope("p1", "u1")


@pytest.mark.parametrize(
    ("limits", "usage", "asked", "over"),
    [
        # No limit: anything goes.
        ({P: {}, U: {}}, {}, {"instances": 1000, "VCPU": 10**6}, []),
        # Exactly at the limit passes; one more does not.
        ({P: {"instances": 3}}, {P: Usage({"instances": 2})}, {"instances": 1}, []),
        (
            {P: {"instances": 3}},
            {P: Usage({"instances": 2}, {"instances": 1})},
            {"instances": 1},
            [("p1", None, "instances", 3, 2, 1, 1)],
        ),
        # Reserved counts like in use.
        (
            {P: {"VCPU": 8}},
            {P: Usage({}, {"VCPU": 8})},
            {"instances": 1, "VCPU": 1},
            [("p1", None, "VCPU", 8, 0, 8, 1)],
        ),
        # A limit of a resource not asked for is not judged, even when already over.
        ({P: {"MEMORY_MB": 0}}, {P: Usage({"MEMORY_MB": 512})}, {"instances": 1, "VCPU": 2}, []),
        # A limit of 0 refuses any amount of it.
        (
            {P: {"VCPU": 0}},
            {},
            {"instances": 1, "VCPU": 1},
            [("p1", None, "VCPU", 0, 0, 0, 1)],
        ),
        # Project and user limits both judged, every excess listed, project first.
        (
            {P: {"VCPU": 10, "instances": 5}, U: {"VCPU": 4}},
            {P: Usage({"VCPU": 8, "instances": 4}), U: Usage({"VCPU": 3, "instances": 1})},
            {"instances": 2, "VCPU": 4},
            [
                ("p1", None, "instances", 5, 4, 0, 2),
                ("p1", None, "VCPU", 10, 8, 0, 4),
                ("p1", "u1", "VCPU", 4, 3, 0, 4),
            ],
        ),
        # Only the user's limit is broken.
        (
            {P: {"VCPU": 100}, U: {"VCPU": 4}},
            {P: Usage({"VCPU": 3}), U: Usage({"VCPU": 3})},
            {"instances": 1, "VCPU": 2},
            [("p1", "u1", "VCPU", 4, 3, 0, 2)],
        ),
    ],
)
def test_judge(
    limits: dict[Scope, dict[str, int]],
    usage: dict[Scope, Usage],
    asked: dict[str, int],
    over: list[tuple[str, str | None, str, int, int, int, int]],
) -> None:
    found = judge(limits, usage, asked)
    assert [
        (e.scope.project_id, e.scope.user_id, e.resource, e.limit, e.in_use, e.reserved, e.asked)
        for e in found
    ] == over


def test_the_refusal_reads_well() -> None:
    error = QuotaExceeded([Excess(P, "instances", 10, 9, 1, 2), Excess(U, "VCPU", 40, 36, 0, 8)])
    assert error.message == (
        "Quota exceeded. Project p1 is limited to 10 instances, has 9 in use and 1 reserved "
        "for queued requests, and this request asks for 2 more. User u1 in project p1 is "
        "limited to 40 VCPU, has 36 in use and 0 reserved for queued requests, and this "
        "request asks for 8 more."
    )
    assert error.code == "berth.scheduler.quota_exceeded"
    assert error.excesses[1].as_body() == {
        "project_id": "p1",
        "user_id": "u1",
        "resource": "VCPU",
        "limit": 40,
        "in_use": 36,
        "reserved": 0,
        "asked": 8,
    }
