"""The time as the database stores it."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Now in UTC, naive, second precision (as stored)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
