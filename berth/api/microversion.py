"""Placement microversions 1.0 to 1.39."""

from __future__ import annotations

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
