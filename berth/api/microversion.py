"""Placement microversions 1.0 to 1.39."""

from __future__ import annotations

import functools

import microversion_parse

SERVICE_TYPE = "placement"
MIN_VERSION = (1, 0)
MAX_VERSION = (1, 39)
VERSIONS = [f"1.{minor}" for minor in range(MIN_VERSION[1], MAX_VERSION[1] + 1)]
HEADER = "openstack-api-version"

Version = microversion_parse.Version


def min_version_string() -> str:
    """The lowest supported microversion as text."""
    return f"{MIN_VERSION[0]}.{MIN_VERSION[1]}"


def max_version_string() -> str:
    """The highest supported microversion as text."""
    return f"{MAX_VERSION[0]}.{MAX_VERSION[1]}"


def parse(headers: dict[str, str]) -> Version:
    """The requested version, or the minimum when none is asked for.

    Raises ``ValueError`` for an unsupported version (406) and ``TypeError``
    for an unparseable one (400), as ``microversion_parse`` does.
    """
    return microversion_parse.extract_version(headers, SERVICE_TYPE, VERSIONS)


@functools.lru_cache(maxsize=512)
def parse_header(value: str | None) -> Version:
    """:func:`parse` of the ``OpenStack-API-Version`` header's value (None: absent).

    Only that header names a Placement microversion, and clients send a
    handful of distinct values, so the answer is kept per value: parsing it
    on every request cost about 2 % of a worker's time.  The ``Version``
    kept is shared by the requests that asked for it; nothing changes one.
    Errors are not cached (they raise again on the next request).
    """
    return parse({} if value is None else {HEADER: value})
