"""Property tests: malformed requests never cause a 5xx, and rejected requests change nothing.

Hypothesis sends random and malformed bodies, headers, query strings, path
parameters (UUIDs and not) and microversions to every route of the table;
then hostile ones: nesting past the limit, NaN and Infinity, lone
surrogates, integers past 64 bits, invalid UTF-8 in the path, the query,
the headers and the body, repeated and bare query parameters.  Fixed
tests cover what Hypothesis would rarely build: 100,000 levels of nesting
on every JSON route, bodies over the size limit (declared or chunked) and
a Content-Length that lies.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import falcon.testing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from berth.api.routes import ROUTES
from berth.bench.hostile import (
    BAD_UTF8,
    CONSUMER,
    DB_POISON,
    GOOD_SLOTS,
    JSON_UNTIL,
    LATEST,
    LATIN1_JUNK,
    POISON,
    QUERY_KEYS,
    QUERY_VALUES,
    ROUTE_BODIES,
    RP_UUID,
    SEED_REQUESTS,
    S,
    fill_path,
    good_but,
    json_with_poison,
    nested,
    slot_paths,
)
from berth.db import tables
from berth.db.engine import Database
from tests.helpers import in_process_client

JSON_LATEST = {"openstack-api-version": LATEST, "content-type": "application/json"}
TEMPLATES = sorted(ROUTES)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)

# Bodies shaped like the real ones, with wrong pieces in them.
plausible_keys = st.sampled_from(
    [
        "name",
        "uuid",
        "parent_provider_uuid",
        "inventories",
        "resource_provider_generation",
        "total",
        "reserved",
        "allocation_ratio",
        "min_unit",
        "max_unit",
        "step_size",
        "allocations",
        "resources",
        "project_id",
        "user_id",
        "consumer_generation",
        "consumer_type",
        "traits",
        "aggregates",
        "mappings",
        "VCPU",
        RP_UUID,
        CONSUMER,
    ]
)
plausible_bodies = st.recursive(
    json_values,
    lambda inner: st.dictionaries(plausible_keys, inner, max_size=5),
    max_leaves=15,
)

path_values = st.one_of(
    st.just(RP_UUID),
    st.just(CONSUMER),
    st.builds(lambda: str(uuid.uuid4())),
    st.sampled_from(["VCPU", "CUSTOM_FOO", "HW_CPU_X86_AVX", "cows", "", "..", "CUSTOM_"]),
    st.text(min_size=1, max_size=40),
)

versions = st.one_of(
    st.builds(lambda m: f"placement 1.{m}", st.integers(0, 45)),
    st.sampled_from([LATEST, "placement 2.0", "placement 1.x", "compute 1.5", ""]),
    st.text(max_size=20),
)

query = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "uuid",
            "member_of",
            "resources",
            "in_tree",
            "required",
            "project_id",
            "user_id",
            "consumer_type",
            "associated",
            "limit",
            "group_policy",
            "x",
        ]
    ),
    st.one_of(st.text(max_size=30), st.just(RP_UUID), st.just("in:" + RP_UUID), st.just("VCPU:1")),
    max_size=3,
)


def _fill(template: str, values: list[str]) -> str:
    names = re.findall(r"{(\w+)}", template)
    path = template
    for name, value in zip(names, values, strict=False):
        path = path.replace("{" + name + "}", quote(value, safe="") or "x")
    return path


def _snapshot(client: falcon.testing.TestClient) -> dict[str, list[Any]]:
    services = _services(client)
    with services.db.read() as conn:
        return {
            table.name: sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
            for table in tables.metadata.sorted_tables
        }


def _services(client: falcon.testing.TestClient) -> Any:
    for mw in client.app._unprepared_middleware:  # RequestSetup holds the services
        if hasattr(mw, "services"):
            return mw.services
    raise AssertionError("no services middleware")


def _seed(client: falcon.testing.TestClient) -> None:
    headers = {"openstack-api-version": LATEST}
    for method, path, body in SEED_REQUESTS:
        assert client.simulate_request(method, path, json=body, headers=headers).status_code < 300


request_parts = st.tuples(
    st.sampled_from(TEMPLATES),
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    st.lists(path_values, min_size=2, max_size=2),
    versions,
    query,
    st.one_of(plausible_bodies.map(lambda b: json.dumps(b).encode()), st.binary(max_size=60)),
    st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8"]),
    st.sampled_from(["admin", "user", "user:project", None]),
)


def _send(
    client: falcon.testing.TestClient,
    method: str,
    path: str,
    query_string: str,
    headers: dict[str, str],
    body: bytes | None,
) -> falcon.testing.Result:
    """Send one request: never a 5xx; a rejected request or a read leaves every table as it was.

    The tables as the last request left them (checked unchanged) are the next one's
    "before": nothing else writes between two requests, and a snapshot (every table
    read) costs more than most requests.
    """
    if not getattr(client, "_seeded", False):
        _seed(client)
        client._seeded = True  # type: ignore[attr-defined]
    before = getattr(client, "_tables", None) or _snapshot(client)
    client._tables = None  # type: ignore[attr-defined]
    result = client.simulate_request(
        method, path, query_string=query_string, headers=headers, body=body
    )
    assert result.status_code < 500, (result.status_code, result.text)
    if result.status_code >= 400 or method == "GET":
        after = _snapshot(client)
        assert after == before, (method, path, result.status_code)
        client._tables = after  # type: ignore[attr-defined]
    return result


PROPERTY_SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(parts=request_parts)
def test_no_5xx_and_rejected_writes_change_nothing(
    client: falcon.testing.TestClient, parts: tuple[Any, ...]
) -> None:
    """Whatever arrives, the answer is < 500; a 4xx leaves the database as it was."""
    template, method, values, version, params, body, ctype, token = parts
    headers = {"openstack-api-version": version}
    if ctype:
        headers["content-type"] = ctype
    if token is not None:
        headers["x-auth-token"] = token
    sent = body if method in ("POST", "PUT", "PATCH") else None
    _send(client, method, _fill(template, values), urlencode(params), headers, sent)


# Hypothesis fills the slots of a shape with good values or poison.
slot_values = st.sampled_from(POISON + GOOD_SLOTS)


def _filled(shape: Any) -> st.SearchStrategy[Any]:
    """A strategy for ``shape`` with every slot drawn from :data:`slot_values`."""
    if isinstance(shape, S):
        return slot_values
    if isinstance(shape, dict):
        return st.fixed_dictionaries({k: _filled(v) for k, v in shape.items()})
    if isinstance(shape, list):
        return st.tuples(*map(_filled, shape)).map(list)
    return st.just(shape)


poisoned_bodies = st.one_of(
    st.recursive(
        st.sampled_from(POISON) | json_values,
        lambda inner: (
            st.dictionaries(plausible_keys, inner, min_size=1, max_size=5)
            | st.lists(inner, max_size=3)
        ),
        max_leaves=10,
    ).map(json_with_poison),
    st.builds(
        nested,
        st.sampled_from([33, 200, 1100, 3000, 100_000]),
        st.sampled_from(["array", "object"]),
    ),
)


def _body_for(route: tuple[str, str]) -> st.SearchStrategy[bytes]:
    """The route's own shape, poisoned, or any poisoned body."""
    shape = ROUTE_BODIES.get(route)
    if shape is None:
        return poisoned_bodies
    return _filled(shape).map(json_with_poison) | poisoned_bodies


# Query strings built by hand: bare keys, repeats, undecodable bytes, huge numbers.
query_pieces = st.one_of(
    st.sampled_from(QUERY_KEYS),
    st.tuples(
        st.sampled_from(QUERY_KEYS),
        st.sampled_from(BAD_UTF8) | st.sampled_from(QUERY_VALUES).map(quote),
    ).map("=".join),
)
hostile_queries = st.lists(query_pieces, max_size=5).map("&".join)

# Path parameters: the seeded objects' names, or undecodable %-escapes, or text.
hostile_paths = st.one_of(st.sampled_from(BAD_UTF8), st.text(max_size=10))


def _mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """Mostly one of ``good``, sometimes one of ``bad``."""
    return st.sampled_from(good * (4 * len(bad)) + bad)


ROUTE_METHODS = [(t, m) for t, handlers in ROUTES.items() for m in handlers]
VERSIONS = _mostly([LATEST, "placement 1.38", "placement 1.20"], LATIN1_JUNK[:2])
CONTENT_TYPES = _mostly(["application/json"], ["application/json; charset=\xff"])
TOKENS = _mostly(["admin"], ["user:project", *LATIN1_JUNK])


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str], bytes | None]:
    """Mostly requests that get as far as the handler; some with undecodable headers."""
    route = draw(st.sampled_from(ROUTE_METHODS + list(ROUTE_BODIES) * 2))
    template, method = route
    segments = draw(st.lists(st.none() | st.none() | hostile_paths, min_size=2, max_size=2))
    headers = {
        "openstack-api-version": draw(VERSIONS),
        "content-type": draw(CONTENT_TYPES),
        "x-auth-token": draw(TOKENS),
    }
    body = draw(_body_for(route)) if method in ("POST", "PUT") else None
    return method, fill_path(template, segments), draw(hostile_queries), headers, body


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(request=hostile_requests())
def test_hostile_input_never_5xx_and_changes_nothing(
    any_client: falcon.testing.TestClient, request: tuple[Any, ...]
) -> None:
    """Poisoned bodies, undecodable paths, queries and headers: < 500, nothing changed.

    On every database: each refuses different things (PostgreSQL a NUL in text,
    an INTEGER parameter over 32 bits).
    """
    _send(any_client, *request)


def test_database_poison_in_every_slot(any_client: falcon.testing.TestClient) -> None:
    """Every shape, every slot, every value a database refuses: < 500, rejections change nothing."""
    for (template, method), shape in ROUTE_BODIES.items():
        for at in slot_paths(shape):
            for poison in DB_POISON:
                body = json_with_poison(good_but(shape, at, poison))
                path = fill_path(template, [None, None])
                _send(any_client, method, path, "", JSON_LATEST, body)


def _detail(result: falcon.testing.Result) -> str:
    """The one error's detail, after checking Placement's error format."""
    (error,) = result.json["errors"]
    assert error["status"] == result.status_code
    assert error.get("code", "placement.undefined_code") == "placement.undefined_code"
    assert error["request_id"].startswith("req-")
    return str(error["detail"])


@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_100000_deep_is_a_400_on_every_json_route(
    client: falcon.testing.TestClient, kind: str
) -> None:
    """The bracket scan refuses it before any parser recurses (it was a RecursionError, 500)."""
    deep = nested(100_000, kind)
    for template, method in ROUTE_BODIES:
        headers = {
            **JSON_LATEST,
            "openstack-api-version": JSON_UNTIL.get(template, LATEST),
        }
        result = _send(client, method, fill_path(template, [None, None]), "", headers, deep)
        assert result.status_code == 400, (template, method, result.text)
        assert "nest 100000 deep, more than the limit of 32" in _detail(result)


def test_nesting_at_the_limit_parses(client: falcon.testing.TestClient) -> None:
    """32 levels are JSON like any other (the schema says what is wrong with it)."""
    result = client.simulate_post(
        "/resource_providers", headers=JSON_LATEST, body=nested(32, "array")
    )
    assert result.status_code == 400
    assert "JSON does not validate" in _detail(result)


@pytest.fixture
def small_client(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    """A client of a berth whose bodies may not exceed 1,000 bytes."""
    with in_process_client(
        sqlite_db, monkeypatch, enforce_new_defaults=False, max_request_body_bytes=1000
    ) as client:
        yield client


def _provider_body(size: int) -> bytes:
    """A valid POST /resource_providers body of exactly ``size`` bytes."""
    head = b'{"name": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_declared_body_over_the_limit_is_a_413(small_client: falcon.testing.TestClient) -> None:
    """Refused on its Content-Length, before anything reads it; on any route."""
    for path in ("/resource_providers", "/traits"):
        result = small_client.simulate_post(path, headers=JSON_LATEST, body=_provider_body(1001))
        assert result.status_code == 413
        assert "larger than the limit of 1000 bytes" in _detail(result)
    result = small_client.simulate_post(
        "/resource_providers", headers=JSON_LATEST, body=json_with_poison({"name": "x" * 100})
    )
    assert result.status_code == 200


def test_body_at_the_limit_is_read(small_client: falcon.testing.TestClient) -> None:
    """Exactly the limit is allowed (here refused by the schema: the name is too long)."""
    result = small_client.simulate_post(
        "/resource_providers", headers=JSON_LATEST, body=_provider_body(1000)
    )
    assert result.status_code == 400
    assert "JSON does not validate" in _detail(result)


def _chunked(client: falcon.testing.TestClient, body: bytes, terminated: bool = True) -> Any:
    """POST a body the way a server hands over a chunked one: no Content-Length."""
    extras = {"CONTENT_LENGTH": "", "wsgi.input_terminated": terminated}
    return client.simulate_post(
        "/resource_providers", headers=JSON_LATEST, body=body, extras=extras
    )


def test_chunked_body_is_bounded_too(small_client: falcon.testing.TestClient) -> None:
    """Without a length, at most limit + 1 bytes are read: over the limit is a 413."""
    assert _chunked(small_client, b" " * 5000 + b'{"name": "c"}').status_code == 413
    assert _chunked(small_client, b'{"name": "chunked"}').status_code == 200
    # A server that cannot say where the body ends: no body, as before.
    result = _chunked(small_client, b'{"name": "lost"}', terminated=False)
    assert result.status_code == 400
    assert "Malformed JSON" in _detail(result)


@pytest.mark.parametrize(("declared", "status"), [("5", 400), ("900", 400), ("-1", 400)])
def test_content_length_that_lies(
    client: falcon.testing.TestClient, declared: str, status: int
) -> None:
    """Shorter than the body: a truncated body (400); longer: the body ended before its
    length, the request is not whole (400, though what came parses)."""
    headers = {**JSON_LATEST, "content-length": declared}
    body = b'{"name": "liar"}'
    result = _send(client, "POST", "/resource_providers", "", headers, body)
    assert result.status_code == status, result.text  # _send: a refusal changed nothing


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/resource_providers", "name=a%00b"),
        ("/allocations/a%00b", ""),
        ("/traits/CUSTOM_A%00", ""),
        ("/usages", "project_id=%00"),
    ],
)
def test_nul_in_path_or_query_is_a_400(
    any_client: falcon.testing.TestClient, path: str, query: str
) -> None:
    """PostgreSQL refuses a NUL in text (it was a DataError, 500): every database answers 400."""
    result = _send(any_client, "GET", path, query, {}, None)
    assert result.status_code == 400
    assert "may not contain NUL" in _detail(result)


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/allocation_candidates", "resources=VCPU:1&limit=9223372036854775808", 200),
        ("/allocation_candidates", "resources=VCPU:2147483648", 400),
        ("/resource_providers", "resources=VCPU:9223372036854775807", 400),
        ("/resource_providers", "name&name=a&name=b&uuid", 400),
    ],
)
def test_huge_and_repeated_query_numbers(
    any_client: falcon.testing.TestClient, path: str, query: str, status: int
) -> None:
    """A limit past sys.maxsize limits nothing; an amount no inventory holds is refused."""
    result = _send(
        any_client, "GET", path, query, {"openstack-api-version": "placement latest"}, None
    )
    assert result.status_code == status, result.text


def _left_unread(client: falcon.testing.TestClient, path: str, body: bytes, **env: Any) -> int:
    """Bytes of ``body`` still in the stream after the app answered."""
    environ = falcon.testing.create_environ(
        path, method="POST", body=body, headers={"content-type": "application/json"}
    )
    environ.update(env)
    client.app(environ, lambda status, headers, exc_info=None: None)
    return len(environ["wsgi.input"].read())


def test_unread_bodies_are_drained_so_the_connection_stays_usable(
    small_client: falcon.testing.TestClient,
) -> None:
    """granian drops a kept-alive connection whose body was left unread (a 401, 404...)."""
    body = b"[" + b" " * 500 + b"]"
    assert _left_unread(small_client, "/nope", body, HTTP_X_AUTH_TOKEN="admin") == 0
    assert _left_unread(small_client, "/resource_providers", body) == 0  # 401
    chunked = {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}
    assert _left_unread(small_client, "/resource_providers", body, **chunked) == 0
    # Over the limit: refused unread, and left so (the server closes that connection).
    assert _left_unread(small_client, "/resource_providers", b" " * 2000) == 2000


class _Reset(io.RawIOBase):
    """A body stream whose client reset the connection (gunicorn raises so)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [("/resource_providers", "admin", "400"), ("/nope", "admin", "404"), ("/traits", "", "401")],
    ids=["read", "dropped after 404", "dropped after 401"],
)
def test_a_client_gone_mid_body_is_no_500(
    client: falcon.testing.TestClient, path: str, token: str, status: str
) -> None:
    """Reading the body (or dropping it after a 404, 401) fails: the answer stays a 4xx."""
    environ = falcon.testing.create_environ(
        path, method="POST", headers={"content-type": "application/json"}
    )
    environ.update({"CONTENT_LENGTH": "100", "wsgi.input": _Reset()})
    if token:
        environ["HTTP_X_AUTH_TOKEN"] = token
    answered: list[str] = []
    client.app(environ, lambda line, headers, exc_info=None: answered.append(line))
    assert answered[0].split()[0] == status
