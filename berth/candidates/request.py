"""Parse the query of ``GET /allocation_candidates`` into a :class:`CandidateRequest`.

Checks run in the reference's order (request-wide parameters first, then the
groups in query order, then the cross-group rules) so the first error reported
is the same one, with the same words.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from berth import qparams
from berth.placement import errors
from berth.qparams import InvalidQuery
from berth.schemas.allocation_candidates import GROUP_KEYS, SUFFIX_NAME, SUFFIX_NUMBER

_KEY_NUMBER = re.compile(rf"^({'|'.join(GROUP_KEYS)})({SUFFIX_NUMBER})?$")
_KEY_NAME = re.compile(rf"^({'|'.join(GROUP_KEYS)})({SUFFIX_NAME})?$")


@dataclass
class RequestGroup:
    """One request group: '' (any providers of a tree) or a suffix (one provider)."""

    suffix: str
    resources: dict[str, int] = field(default_factory=dict)
    required: list[set[str]] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)
    member_of: list[set[str]] = field(default_factory=list)
    forbidden_aggs: set[str] = field(default_factory=set)
    in_tree: str | None = None

    @property
    def use_same_provider(self) -> bool:
        """Suffixed groups must be satisfied by a single provider."""
        return bool(self.suffix)


@dataclass
class CandidateRequest:
    """Everything a candidates query asks for, names not yet resolved."""

    groups: dict[str, RequestGroup]
    limit: int | None = None
    group_policy: str | None = None
    root_required: set[str] = field(default_factory=set)
    root_forbidden: set[str] = field(default_factory=set)
    same_subtrees: list[set[str]] = field(default_factory=list)
    nested_aware: bool = True


@dataclass(frozen=True)
class Features:
    """Which query features the request's microversion allows."""

    forbidden_traits: bool  # 1.22
    multiple_member_of: bool  # 1.24
    forbidden_aggs: bool  # 1.32
    named_suffixes: bool  # 1.33
    resourceless_groups: bool  # 1.36
    any_traits: bool  # 1.39
    nested_aware: bool  # 1.29

    @classmethod
    def at(cls, minor: int) -> Features:
        """The features of microversion 1.<minor>."""
        return cls(
            forbidden_traits=minor >= 22,
            multiple_member_of=minor >= 24,
            forbidden_aggs=minor >= 32,
            named_suffixes=minor >= 33,
            resourceless_groups=minor >= 36,
            any_traits=minor >= 39,
            nested_aware=minor >= 29,
        )


def _values(pairs: Sequence[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in pairs if name == key]


def parse(pairs: Sequence[tuple[str, str]], features: Features) -> CandidateRequest:
    """The parsed request; :class:`InvalidQuery` with the reference's message on bad input."""
    request = _request_wide(pairs)
    request.nested_aware = features.nested_aware
    request.groups = _groups(pairs, features)
    if features.resourceless_groups:
        _check_resourceless(request)
    else:
        _check_orphans(request.groups)
    if features.forbidden_traits:
        _check_conflicts(request.groups)
    granular = [g for g in request.groups.values() if g.use_same_provider]
    if request.group_policy is None and len(granular) > 1:
        raise InvalidQuery(
            'The "group_policy" parameter is required when specifying '
            'more than one "resources{N}" parameter.'
        )
    return request


def _request_wide(pairs: Sequence[tuple[str, str]]) -> CandidateRequest:
    request = CandidateRequest(groups={})
    limits = _values(pairs, "limit")
    if limits:
        try:
            # Past sys.maxsize a limit limits nothing (and islice refuses it).
            request.limit = min(int(limits[0]), sys.maxsize)
        except ValueError:
            message = f"Invalid query string parameters: bad limit {limits[0]!r}"
            raise InvalidQuery(message) from None
    policies = _values(pairs, "group_policy")
    request.group_policy = policies[0] if policies else None
    roots = _values(pairs, "root_required")
    if roots:
        if len(roots) > 1:
            raise InvalidQuery(
                "Query parameter 'root_required' may be specified only once.",
                code=errors.ILLEGAL_DUPLICATE_QUERYPARAM,
            )
        request.root_required, request.root_forbidden = _root_traits(roots[0])
    for value in _values(pairs, "same_subtree"):
        suffixes = {part.strip() for part in value.split(",")}
        if "" in suffixes:
            raise InvalidQuery(
                "Empty string (unsuffixed group) can not be specified in `same_subtree` ",
                code=errors.QUERYPARAM_BAD_VALUE,
            )
        request.same_subtrees.append(suffixes)
    return request


def _root_traits(value: str) -> tuple[set[str], set[str]]:
    """``root_required``: plain and ``!`` traits, never the ``in:`` form."""
    any_of, forbidden = qparams.parse_traits(value, allow_forbidden=True, allow_any=False)
    required = {next(iter(names)) for names in any_of}
    conflicts = required & forbidden
    if conflicts:
        raise InvalidQuery(
            "Conflicting required and forbidden traits found in root_required: "
            + ", ".join(conflicts),
            code=errors.QUERYPARAM_BAD_VALUE,
        )
    return required, forbidden


def _groups(pairs: Sequence[tuple[str, str]], features: Features) -> dict[str, RequestGroup]:
    pattern = _KEY_NAME if features.named_suffixes else _KEY_NUMBER
    groups: dict[str, RequestGroup] = {}
    for key, value in pairs:
        match = pattern.match(key)
        if not match:
            continue
        kind, suffix = match.group(1), match.group(2) or ""
        group = groups.setdefault(suffix, RequestGroup(suffix))
        if kind == "resources":
            group.resources = qparams.parse_resources(value)
        elif kind == "required":
            group.required, group.forbidden = qparams.parse_required(
                _values(pairs, key),
                allow_forbidden=features.forbidden_traits,
                allow_any=features.any_traits,
            )
        elif kind == "member_of":
            group.member_of, group.forbidden_aggs = qparams.parse_member_of(
                _values(pairs, key),
                allow_multiple=features.multiple_member_of,
                allow_forbidden=features.forbidden_aggs,
                suffix=suffix,
            )
        else:
            group.in_tree = qparams.parse_in_tree(value)
    return groups


def _check_resourceless(request: CandidateRequest) -> None:
    groups = request.groups
    resourceless = {suffix for suffix, group in groups.items() if not group.resources}
    in_subtrees: set[str] = set().union(*request.same_subtrees)
    if len(resourceless) == len(groups):
        raise InvalidQuery(
            "There must be at least one resources or resources[$S] parameter.",
            code=errors.QUERYPARAM_MISSING_VALUE,
        )
    bad = [suffix for suffix in resourceless if suffix not in in_subtrees]
    if bad:
        raise InvalidQuery(
            "Resourceless suffixed group request should be specified in `same_subtree` "
            f"query param: bad group(s) - {bad}.",
            code=errors.QUERYPARAM_BAD_VALUE,
        )
    unknown = [suffix for suffix in in_subtrees if suffix not in groups]
    if unknown:
        raise InvalidQuery(
            f"Real suffixes should be specified in `same_subtree`: {unknown} not found in "
            f"{list(groups)}.",
            code=errors.QUERYPARAM_BAD_VALUE,
        )


def _check_orphans(groups: dict[str, RequestGroup]) -> None:
    orphans = [f"required{s}" for s, g in groups.items() if g.required and not g.resources]
    if orphans:
        raise InvalidQuery(
            "All traits parameters must be associated with resources.  "
            f"Found the following orphaned traits keys: {', '.join(orphans)}"
        )
    orphans = [
        f"member_of{s}"
        for s, g in groups.items()
        if not g.resources and (g.member_of or g.forbidden_aggs)
    ]
    if orphans:
        raise InvalidQuery(
            "All member_of parameters must be associated with resources. "
            f"Found the following orphaned member_of keys: {', '.join(orphans)}"
        )
    if not all(g.resources for g in groups.values()):
        raise InvalidQuery("All request groups must specify resources.")
    if not groups:
        raise InvalidQuery(
            "At least one request group (`resources` or `resources{$S}`) is required."
        )


def _check_conflicts(groups: dict[str, RequestGroup]) -> None:
    conflicts = [
        f"required{suffix}: ({', '.join(sorted(any_of))})"
        for suffix, group in groups.items()
        for any_of in group.required
        if all(name in group.forbidden for name in any_of)
    ]
    if conflicts:
        raise InvalidQuery(
            "Conflicting required and forbidden traits found in the following traits keys: "
            + ", ".join(sorted(conflicts))
        )
