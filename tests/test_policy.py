"""The policy engine (berth.policy): check strings, defaults, overrides, scope."""

from __future__ import annotations

from typing import Any

import pytest

from berth.placement.errors import NotAuthorized
from berth.policy import Enforcer, parse_check

ADMIN = {"roles": ["admin"], "project_id": "p1"}
READER = {"roles": ["reader"], "project_id": "p1"}
NOBODY: dict[str, Any] = {"roles": [], "project_id": "p1"}


@pytest.mark.parametrize(
    ("text", "creds", "allowed"),
    [
        ("", NOBODY, True),
        ("@", NOBODY, True),
        ("!", ADMIN, False),
        ("role:admin", ADMIN, True),
        ("role:ADMIN", ADMIN, True),
        ("role:admin", READER, False),
        ("role:reader and project_id:%(project_id)s", READER, True),
        ("role:reader and project_id:%(other)s", READER, False),
        ("role:admin or role:reader", READER, True),
        ("not role:admin", READER, True),
        ("not (role:admin or role:reader)", READER, False),
        ("(role:admin or role:reader) and project_id:p1", READER, True),
        ("project_id:'p1'", READER, True),
        ("system_scope:None", READER, True),
        ("rule:admin_api", ADMIN, True),
        ("rule:no_such_rule", ADMIN, False),
    ],
)
def test_check_strings(text: str, creds: dict[str, Any], allowed: bool) -> None:
    check = parse_check(text)
    assert check({"project_id": "p1"}, creds, Enforcer()) is allowed


@pytest.mark.parametrize("text", ["role:a role:b", "role:a )"])
def test_unparsable_check_strings(text: str) -> None:
    with pytest.raises(ValueError, match="cannot parse policy rule"):
        parse_check(text)


def test_deprecated_defaults_apply_only_without_new_defaults() -> None:
    target = {"project_id": "p1"}
    service = {"roles": ["admin"], "project_id": "p1"}
    Enforcer(enforce_new_defaults=False).authorize("placement:reshaper:reshape", target, service)
    with pytest.raises(NotAuthorized, match="placement:reshaper:reshape"):
        Enforcer(enforce_new_defaults=True).authorize("placement:reshaper:reshape", target, service)


def test_overrides_and_system_scope() -> None:
    enforcer = Enforcer(overrides={"placement:traits:list": "@", "custom": "role:x"})
    enforcer.authorize("placement:traits:list", {}, NOBODY)
    assert enforcer.check_rule("custom", {}, {"roles": ["x"]})
    with pytest.raises(NotAuthorized):
        enforcer.authorize("placement:traits:list", {}, {**ADMIN, "system_scope": "all"})
