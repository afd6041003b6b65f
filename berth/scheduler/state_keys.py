"""Keys into host state: ``namespace:/json/pointer`` (RFC 6901), as filters and weighers name them.

``compute:/metrics/cpu_util`` is the number at ``metrics`` → ``cpu_util`` of
the host's ``compute`` namespace.  A key without a namespace
(``cpu.percent``) keeps its old meaning, a metric the compute service
reported: ``compute:/metrics/cpu.percent``.  A key is namespaced when a
namespace name is followed by ``:/`` (or by ``:`` alone, the whole object).
Keys are parsed once, when the settings are; :meth:`StateKey.find` only
walks dictionaries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAMESPACED = re.compile(r"^([a-z0-9][a-z0-9_.-]{0,63}):(/.*)?$", re.DOTALL)
MISSING = object()


@dataclass(frozen=True)
class StateKey:
    """A namespace and the path of one value inside its object."""

    text: str  # as written in the setting
    namespace: str
    path: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> StateKey:
        """``ns:/a/b`` as it says; a plain name as ``compute:/metrics/<name>``."""
        found = NAMESPACED.match(text)
        if found is None:
            return cls(text, "compute", ("metrics", text))
        pointer = found.group(2) or ""
        tokens = pointer.split("/")[1:] if pointer else []
        return cls(text, found.group(1), tuple(_unescape(t) for t in tokens))

    def find(self, namespaces: Mapping[str, Mapping[str, Any]]) -> Any:
        """The value at this key in a host's namespaces (``MISSING`` when there is none)."""
        value: Any = namespaces.get(self.namespace, MISSING)
        for token in self.path:
            if isinstance(value, Mapping):
                value = value.get(token, MISSING)
            elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
                value = value[int(token)]
            else:
                return MISSING
        return value

    def number(self, namespaces: Mapping[str, Mapping[str, Any]]) -> float | None:
        """The value at this key if it is a number (a boolean is not), else None."""
        value = self.find(namespaces)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def __str__(self) -> str:
        return self.text


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")
