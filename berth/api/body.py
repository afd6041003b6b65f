"""Request bodies: read at most a bounded number of bytes, bound the nesting, parse JSON.

Nothing here trusts the client: a body over ``max_request_body_bytes`` is
refused (413) before it is read whole, whether it declares its length or
comes chunked; one that ends before its declared length is refused (400),
even when what came would parse; nesting deeper than ``max_json_depth`` is
refused (400) by a scan of the raw bytes before any parser recurses; what
parses must be JSON a database can store (no NaN or Infinity, no lone
surrogates, integers in 64 bits).  Every refusal keeps Placement's "Malformed JSON: ..." or "JSON
does not validate: ..." shape.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
from array import array
from collections.abc import Iterator
from typing import Any, Protocol

import orjson

from berth.api.errors import HTTPError, bad_request

CHUNK = 64 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# A JSON string from its opening quote; the closing quote is optional so that
# an unterminated string ends the scan instead of being retried from every
# quote inside it (which would be quadratic).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_LONG_NUMBER = re.compile(rb"\d{19}")
_NUL_ESCAPE = b"\\u0000"
_MISSING = object()


class Readable(Protocol):
    """A request body stream (``wsgi.input``)."""

    def read(self, size: int = -1, /) -> bytes:
        """At most ``size`` bytes; empty at the end."""
        ...


def too_large(limit: int) -> HTTPError:
    """The 413 for a body over ``limit`` bytes."""
    return HTTPError(413, f"Request body is larger than the limit of {limit} bytes.")


def cut_short(got: int, length: int) -> HTTPError:
    """The 400 for a body that ended before its declared length."""
    return bad_request(
        f"The request body could not be read: it ended after {got} of the {length} bytes"
        " its Content-Length declared."
    )


def read(stream: Readable, length: int | None, chunked: bool, limit: int) -> bytes:
    """The body: ``length`` bytes, or (chunked) at most ``limit`` bytes; 413 beyond ``limit``."""
    if length is not None:
        if length > limit:
            raise too_large(limit)
        raw = _read_upto(stream, length)
        if len(raw) < length:
            # The client closed (or reset) its side first: the request is not whole,
            # even when what came parses (a write must not be done on half a request).
            raise cut_short(len(raw), length)
        return raw
    if not chunked:
        return b""
    raw = _read_upto(stream, limit + 1)
    if len(raw) > limit:
        raise too_large(limit)
    return raw


def _read_upto(stream: Readable, size: int) -> bytes:
    """Up to ``size`` bytes, fewer when the stream ends first."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = stream.read(min(left, CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def drain(stream: Readable, limit: int) -> None:
    """Read and drop what is left of a body that ends (within ``limit``), unread by anyone."""
    left = limit + 1
    while left > 0:
        part = stream.read(min(left, CHUNK))
        if not part:
            break
        left -= len(part)


def nesting(raw: bytes) -> int:
    """How deep arrays and objects nest in ``raw`` (brackets inside strings do not count)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    return max(0, max(itertools.accumulate(array("b", brackets.translate(_STEP)))))


def check_nesting(raw: bytes, limit: int) -> None:
    """400 when arrays and objects in ``raw`` nest deeper than ``limit``."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # too few brackets to be too deep: no scan
    depth = nesting(raw)
    if depth > limit:
        raise bad_request(
            f"Malformed JSON: arrays and objects nest {depth} deep, more than the limit of {limit}"
        )


def loads(raw: bytes, max_depth: int) -> Any:
    """Parse a body as JSON (400 'Malformed JSON' or 'JSON does not validate' when unusable)."""
    check_nesting(raw, max_depth)
    # orjson turns an integer over 64 bits into a float: long numbers go to Python's json.
    long_numbers = _LONG_NUMBER.search(raw) is not None
    data = _MISSING
    if not long_numbers:
        # What orjson refuses Python's json may take (as the reference does), or explain.
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(raw)
    if data is _MISSING:
        data = _loads_strictly(raw)
    if long_numbers or _NUL_ESCAPE in raw:
        check_values(data)
    return data


def _reject_constant(name: str) -> Any:
    """Python's json takes NaN and Infinity; JSON does not."""
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    """A number as a float, refused when it is beyond a double (1e400)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range for a double")
    return value


def _loads_strictly(raw: bytes) -> Any:
    """Python's json, for its messages; UTF-8, finite numbers and encodable strings only."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite)
        # A lone surrogate escape ("\ud800") parses, but no database takes it.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except ValueError as exc:  # UnicodeError and JSONDecodeError are ValueErrors
        raise bad_request(f"Malformed JSON: {exc}") from None
    return data


def _scalars(data: Any) -> Iterator[Any]:
    """Every key and every leaf value of ``data`` (depth-first, without recursion)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield from value.keys()
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        else:
            yield value


def check_values(data: Any) -> None:
    """400 for an integer no 64-bit column holds, or a string with a NUL no database stores."""
    for value in _scalars(data):
        if isinstance(value, str):
            if "\x00" in value:
                raise bad_request("JSON does not validate: strings may not contain NUL (\\u0000)")
        elif isinstance(value, int) and not isinstance(value, bool):
            if value > INT64_MAX:
                raise bad_request(
                    f"JSON does not validate: {value} is greater than the maximum of {INT64_MAX}"
                )
            if value < INT64_MIN:
                raise bad_request(
                    f"JSON does not validate: {value} is less than the minimum of {INT64_MIN}"
                )
