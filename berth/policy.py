"""Policy: the reference's default rules and an oslo.policy-style checker.

Rules are check strings in the oslo.policy language (``role:admin or
(role:reader and project_id:%(project_id)s)``, ``rule:NAME``, ``@``, ``!``).
With ``enforce_new_defaults`` off, a default rule that has a deprecated
predecessor is the new check OR the old one, as oslo.policy does.  Every
placement rule is project-scoped: a system-scoped token is refused.
A policy file (YAML or JSON mapping of rule name to check string) overrides
defaults; an overridden rule no longer ORs in its deprecated check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from berth.placement.errors import NotAuthorized

ADMIN_OR_SERVICE = "rule:admin_or_service_api"
ADMIN = "rule:admin_api"


@dataclass(frozen=True)
class RuleDefault:
    """A registered rule: name, check string, scope types, deprecated check."""

    name: str
    check: str
    scope_types: tuple[str, ...] = ("project",)
    deprecated: str | None = None


_BASE = [
    RuleDefault("admin_api", "role:admin"),
    RuleDefault("service_api", "role:service", deprecated="role:admin"),
    RuleDefault("admin_or_service_api", "role:admin or role:service", deprecated="role:admin"),
    RuleDefault(
        "project_reader_api",
        "role:reader and project_id:%(project_id)s",
        scope_types=(),
        deprecated="role:admin",
    ),
    RuleDefault(
        "admin_or_project_reader_or_service_api",
        "role:admin or rule:project_reader_api or role:service",
        deprecated="role:admin",
    ),
]

_ADMIN_OR_SERVICE_ACTIONS = [
    "resource_providers:list",
    "resource_providers:create",
    "resource_providers:show",
    "resource_providers:update",
    "resource_providers:delete",
    "resource_classes:list",
    "resource_classes:create",
    "resource_classes:show",
    "resource_classes:update",
    "resource_classes:delete",
    "resource_providers:inventories:list",
    "resource_providers:inventories:create",
    "resource_providers:inventories:show",
    "resource_providers:inventories:update",
    "resource_providers:inventories:delete",
    "resource_providers:aggregates:list",
    "resource_providers:aggregates:update",
    "resource_providers:usages",
    "traits:list",
    "traits:show",
    "traits:update",
    "traits:delete",
    "resource_providers:traits:list",
    "resource_providers:traits:update",
    "resource_providers:traits:delete",
    "allocations:manage",
    "allocations:list",
    "allocations:update",
    "allocations:delete",
    "resource_providers:allocations:list",
    "allocation_candidates:list",
]

# berth's scheduler extension (docs/scheduler.md), berth:scheduler:<action>.
_SCHEDULER_ACTIONS = [
    "versions",
    "select_destinations",
    "hosts:list",
    "hosts:show",
    "hosts:update",
    "aggregates:show",
    "aggregates:update",
    "flavors:list",
    "flavors:create",
    "flavors:show",
    "flavors:delete",
    "server_groups:list",
    "server_groups:create",
    "server_groups:show",
    "server_groups:update",
    "server_groups:delete",
    "quotas:show",
    "quotas:update",
    "quotas:delete",
    "requests:create",
    "requests:show",
    "requests:delete",
    "pull:agent",
]

DEFAULT_RULES: list[RuleDefault] = [
    *_BASE,
    *(RuleDefault(f"berth:scheduler:{a}", ADMIN_OR_SERVICE) for a in _SCHEDULER_ACTIONS),
    # Host state (scheduler 1.3): reporters write their namespaces; only operators
    # (admin) write the operator namespace (disabled, zone), whatever the route.
    RuleDefault("berth:scheduler:hosts:state:report", ADMIN_OR_SERVICE),
    RuleDefault("berth:scheduler:hosts:state:operator", ADMIN),
    *(RuleDefault(f"placement:{a}", ADMIN_OR_SERVICE) for a in _ADMIN_OR_SERVICE_ACTIONS),
    RuleDefault("placement:usages", "rule:admin_or_project_reader_or_service_api"),
    RuleDefault("placement:reshaper:reshape", "rule:service_api"),
]

Check = Callable[[Mapping[str, Any], Mapping[str, Any], "Enforcer"], bool]

_TOKEN = re.compile(r"\s*((?:%\([^)]*\)|[^\s()])+|\(|\))")


def _atom(text: str) -> Check:
    if text == "@":
        return lambda target, creds, enf: True
    if text == "!":
        return lambda target, creds, enf: False
    kind, _, match = text.partition(":")
    if kind == "rule":
        return lambda target, creds, enf: enf.check_rule(match, target, creds)
    if kind == "role":
        return lambda target, creds, enf: match.lower() in creds.get("roles", [])

    def generic(target: Mapping[str, Any], creds: Mapping[str, Any], enf: Enforcer) -> bool:
        try:
            wanted = match % target if "%(" in match else match.strip("'\"")
        except KeyError:
            return False
        value = creds.get(kind)
        if isinstance(value, bool) or value is None:
            return str(value) == wanted
        return str(value) == str(wanted)

    return generic


class _Parser:
    """Recursive descent over the tokens of one check string (``or`` < ``and`` < ``not``)."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = _TOKEN.findall(text)
        self.pos = 0

    def peek(self) -> str | None:
        """The next token, not consumed (None at the end)."""
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        """Consume the next token."""
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def any_of(self) -> Check:
        """``a or b or ...``."""
        return self._joined("or", self.all_of, any)

    def all_of(self) -> Check:
        """``a and b and ...``."""
        return self._joined("and", self.negated, all)

    def _joined(
        self, word: str, operand: Callable[[], Check], combine: Callable[[Iterator[bool]], bool]
    ) -> Check:
        parts = [operand()]
        while self.peek() == word:
            self.take()
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        return lambda t, c, e: combine(p(t, c, e) for p in parts)

    def negated(self) -> Check:
        """``not x``, a parenthesised expression, or an atom."""
        if self.peek() == "not":
            self.take()
            inner = self.negated()
            return lambda t, c, e: not inner(t, c, e)
        if self.peek() == "(":
            self.take()
            inner = self.any_of()
            if self.peek() == ")":
                self.take()
            return inner
        return _atom(self.take())


def parse_check(text: str) -> Check:
    """Compile an oslo.policy check string into a predicate."""
    parser = _Parser(text)
    if not parser.tokens:
        return lambda t, c, e: True
    check = parser.any_of()
    if parser.pos != len(parser.tokens):
        raise ValueError(f"cannot parse policy rule {text!r}")
    return check


def load_overrides(path: str) -> dict[str, str]:
    """Read a policy file: a mapping of rule name to check string."""
    if not path:
        return {}
    data: Any = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"policy file {path} must hold a mapping")
    return {str(k): str(v) for k, v in data.items()}


class Enforcer:
    """Decides whether credentials may perform an action."""

    def __init__(self, enforce_new_defaults: bool = True, overrides: dict[str, str] | None = None):
        overrides = overrides or {}
        self.defaults = {r.name: r for r in DEFAULT_RULES}
        self.rules: dict[str, Check] = {}
        for rule in DEFAULT_RULES:
            text = rule.check
            if rule.name in overrides:
                text = overrides[rule.name]
            elif rule.deprecated and not enforce_new_defaults:
                text = f"({text}) or ({rule.deprecated})"
            self.rules[rule.name] = parse_check(text)
        for name, text in overrides.items():
            if name not in self.rules:
                self.rules[name] = parse_check(text)

    def check_rule(self, name: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> bool:
        """Evaluate a rule by name; an unknown rule fails closed."""
        rule = self.rules.get(name)
        return bool(rule and rule(target, creds, self))

    def authorize(self, action: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> None:
        """Raise :class:`NotAuthorized` unless ``creds`` may do ``action``."""
        registered = self.defaults.get(action)
        token_scope = "system" if creds.get("system_scope") else "project"
        if registered and registered.scope_types and token_scope not in registered.scope_types:
            raise NotAuthorized(f"Policy does not allow {action} to be performed.")
        if not self.check_rule(action, target, creds):
            raise NotAuthorized(f"Policy does not allow {action} to be performed.")
