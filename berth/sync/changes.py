"""One committed change of host state or aggregate metadata, as the sync backends carry it.

A writer builds a :class:`Change` per change-log row it inserted (the row's
id is the change's sequence number: for one key, ids grow in commit order,
since writes of a key are serialised by its generation swap or row lock)
and, after the commit, hands them to its backend.  A change *carries* the
new value (a namespace's object and generation, an aggregate's metadata) so
that a worker can apply it without reading the database; one that does not
(``carried=False``: too large for the backend, or a provider deleted) only
names the key, and the worker reads it from the database.

The wire form is compact JSON: ``{"k": "h"|"a", "i": id, "u": key, "n":
namespace, "g": generation, "t": received at, "b": value}``; ``b`` absent
means not carried, ``b`` null a deleted namespace.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

HOST = "h"  # a namespace of a host's state
AGGREGATE = "a"  # an aggregate's metadata


@dataclass(frozen=True)
class Change:
    """A committed change: its log's kind, log row id, key and (when carried) new value."""

    kind: str
    id: int
    key: str
    namespace: str | None = None
    generation: int = 0
    received_at: datetime.datetime | None = None
    body: Mapping[str, Any] | None = None  # None: the namespace was emptied
    carried: bool = True

    @property
    def version_key(self) -> tuple[str, str | None]:
        """What one version counts for: a (host, namespace), or an aggregate."""
        return self.key, self.namespace

    def keys_only(self) -> Change:
        """The same change without its value (the reader goes to the database for it)."""
        return Change(self.kind, self.id, self.key, self.namespace, carried=False)

    def encode(self) -> bytes:
        """The wire form (module docstring)."""
        out: dict[str, Any] = {"k": self.kind, "i": self.id, "u": self.key}
        if self.namespace is not None:
            out["n"] = self.namespace
        if self.carried:
            out["g"] = self.generation
            if self.received_at is not None:
                out["t"] = self.received_at.isoformat()
            out["b"] = self.body
        return orjson.dumps(out)


def host_change(
    change_id: int,
    provider_uuid: str,
    namespace: str,
    generation: int,
    received_at: datetime.datetime,
    body: Mapping[str, Any] | None,
) -> Change:
    """A namespace of a host written (``body``) or emptied (None)."""
    return Change(HOST, change_id, provider_uuid, namespace, generation, received_at, body)


def aggregate_change(change_id: int, aggregate_uuid: str, metadata: Mapping[str, str]) -> Change:
    """An aggregate's metadata replaced."""
    return Change(AGGREGATE, change_id, aggregate_uuid, body=dict(metadata))


def decode(data: bytes | str) -> Change:
    """A change from its wire form; ValueError when it is not one."""
    try:
        raw = orjson.loads(data)
        kind, change_id, key = raw["k"], int(raw["i"]), str(raw["u"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a host-state change: {exc}") from None
    if kind not in (HOST, AGGREGATE):
        raise ValueError(f"not a host-state change kind: {kind!r}")
    namespace = raw.get("n")
    if "b" not in raw:
        return Change(kind, change_id, key, namespace, carried=False)
    at = raw.get("t")
    received_at = datetime.datetime.fromisoformat(at) if at else None
    return Change(kind, change_id, key, namespace, int(raw.get("g", 0)), received_at, raw["b"])
