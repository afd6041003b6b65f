"""The ``db`` backend: nothing is pushed; each worker polls the change logs.

Kept as a module of its own so that every backend has one; the work is
:class:`berth.sync.protocol.NullSync` and :class:`berth.sync.feed.ChangeFeed`.
"""

from __future__ import annotations

from berth.sync.protocol import NullSync

DbSync = NullSync

__all__ = ["DbSync"]
