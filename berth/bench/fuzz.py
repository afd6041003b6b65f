"""``berth bench fuzz``: hostile requests against a Placement API; no 5xx, no change on refusal.

Requests are drawn from :mod:`berth.bench.hostile` with a seeded
:class:`random.Random`: every route and method (and made-up methods), the
seeded objects' ids or undecodable %-escapes in the path, bare, repeated
and undecodable query parameters, junk microversions, tokens and content
types, and bodies: each write's own shape with poison in one slot or in
many, random JSON, nesting past the limit, random bytes.  A few percent are
framed by hand on a socket: chunked bodies (within and over the size limit),
a Content-Length shorter or longer than the body (the client then closes
its side), a declared length over the limit, a body over it, a body cut
short by a reset.

Writes take a lock that reads share (:class:`Gate`), and the database is
looked at before and after each one (:mod:`berth.bench.fuzz_state`): a
refused write that changed it, or a change between writes (a read, or
nothing), is counted.  A ``berth serve`` the lab starts keeps its log, which
is searched afterwards for errors, tracebacks and workers that died.  The
result line (``kind: fuzz``) has the counts by status and by kind of
request, the 5xx and the changes found (with the request that caused each),
the requests that got no answer, and the log's error lines.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from berth.api.routes import ROUTES
from berth.bench import fuzz_state, fuzz_wire, hostile
from berth.bench.cli_options import DATABASE, OUT, console, emit
from berth.bench.progress import bar
from berth.bench.targets import Target, berth_server, open_target

READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answers that say nothing of what a write did: neither accepted nor refused.
UNKNOWN_OUTCOME = frozenset({"reset", "closed", "timeout"})
ROUTE_METHODS = [(t, m) for t, handlers in ROUTES.items() for m in handlers]
JSON_ROUTES = list(hostile.ROUTE_BODIES)
ODD_METHODS = ["BREW", "get", "PROPFIND", "TRACE", "X-" + "Y" * 30]
VERSIONS = [hostile.LATEST] * 6 + ["placement 1.38", "placement 1.20", "placement 1.0"]
VERSIONS += [*hostile.LATIN1_JUNK[:2], "placement 9.99", ""]
TOKENS = ["admin"] * 8 + ["user:project", "", *hostile.LATIN1_JUNK]
CONTENT_TYPES = ["application/json"] * 8 + ["text/plain", "", "application/json; charset=\xff"]
BODY_KINDS = ["poison_one"] * 7 + ["poison_many"] * 3 + ["good"] * 3 + ["json"] * 3
BODY_KINDS += ["bytes"] * 2 + ["deep", "empty"]
LOG_PROBLEM = re.compile(
    r'"level": ?"(error|critical)"|\[(ERROR|CRITICAL)\]|Traceback|died|respawn'
)
FRAMINGS = ["chunked", "chunked_over", "short_length", "long_length", "declared_over", "over"]
FRAMINGS += ["reset"]


@dataclass
class Probe:
    """One request to send: what it is, and its bytes (``framing``: sent by hand)."""

    kind: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None
    framing: str = ""

    @property
    def write(self) -> bool:
        """Anything but a read takes the write lock and is checked for changes."""
        return self.method not in READS

    def describe(self) -> dict[str, Any]:
        """For the report of a finding."""
        body = (self.body or b"")[:200].decode("latin-1")
        return {"kind": self.kind, "method": self.method, "path": self.path[:300], "body": body}


class Generator:
    """Hostile requests from a seeded random source."""

    def __init__(self, rng: random.Random, body_limit: int) -> None:
        self.rng = rng
        self.body_limit = body_limit

    def probe(self) -> Probe:
        """The next request (about 1.5% framed by hand)."""
        rng = self.rng
        template, method = rng.choice(ROUTE_METHODS + JSON_ROUTES * 2)
        if rng.random() < 0.02:
            method = rng.choice(ODD_METHODS)
        path = hostile.fill_path(template, [self._segment(), self._segment()])
        query = self._query()
        headers = self._headers()
        probe = Probe("no_body", method, path + (f"?{query}" if query else ""), headers)
        if method in ("POST", "PUT", "PATCH"):
            probe.kind = rng.choice(BODY_KINDS)
            probe.body = self._body(probe.kind, (template, method))
        if rng.random() < 0.015:
            self._frame(probe, rng.choice(FRAMINGS))
        return probe

    def _segment(self) -> str | None:
        """None (the seeded object) mostly; else undecodable or random text."""
        roll = self.rng.random()
        if roll < 0.7:
            return None
        if roll < 0.85:
            return self.rng.choice(hostile.BAD_UTF8)
        return "".join(chr(self.rng.randrange(0x20, 0x2FF)) for _ in range(self.rng.randrange(9)))

    def _query(self) -> str:
        """Bare keys, repeats, undecodable escapes and huge numbers, joined by &."""
        rng = self.rng
        pieces = []
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            key = rng.choice(hostile.QUERY_KEYS)
            roll = rng.random()
            if roll < 0.15:
                pieces.append(key)
            elif roll < 0.4:
                pieces.append(f"{key}={rng.choice(hostile.BAD_UTF8)}")
            else:
                pieces.append(f"{key}={quote(rng.choice(hostile.QUERY_VALUES), safe=':,')}")
        return "&".join(pieces)

    def _headers(self) -> dict[str, str]:
        """Microversion, token and content type, mostly usable."""
        rng = self.rng
        headers = {"openstack-api-version": rng.choice(VERSIONS)}
        token = rng.choice(TOKENS)
        if token:
            headers["x-auth-token"] = token
        content_type = rng.choice(CONTENT_TYPES)
        if content_type:
            headers["content-type"] = content_type
        return headers

    def _body(self, kind: str, route: tuple[str, str]) -> bytes:
        """A body of ``kind`` for ``route`` (its own shape when it has one)."""
        rng = self.rng
        shape = hostile.ROUTE_BODIES.get(route, {"name": hostile.S("x")})
        if kind == "good":
            return hostile.json_with_poison(hostile.good_but(shape, None, b""))
        if kind == "poison_one":
            at = rng.choice(list(hostile.slot_paths(shape)))
            poison = rng.choice(hostile.POISON + hostile.DB_POISON)
            return hostile.json_with_poison(hostile.good_but(shape, at, poison))
        if kind == "poison_many":
            return hostile.json_with_poison(self._fill(shape))
        if kind == "json":
            return hostile.json_with_poison(self._json(3))
        if kind == "bytes":
            return rng.randbytes(rng.randrange(1, 80))
        if kind == "deep":
            depth = rng.choice([33, 200, 1100, 3000, 100_000])
            return hostile.nested(depth, rng.choice(["array", "object"]))
        return b""

    def _fill(self, shape: Any) -> Any:
        """``shape`` with each slot good or poisoned at random."""
        if isinstance(shape, hostile.S):
            pool = hostile.POISON if self.rng.random() < 0.5 else hostile.GOOD_SLOTS
            return self.rng.choice(pool)
        if isinstance(shape, dict):
            return {k: self._fill(v) for k, v in shape.items()}
        if isinstance(shape, list):
            return [self._fill(v) for v in shape]
        return shape

    def _json(self, depth: int) -> Any:
        """Random JSON (with poison tokens among the leaves)."""
        rng = self.rng
        roll = rng.random()
        if depth == 0 or roll < 0.4:
            return rng.choice([*hostile.POISON, *hostile.GOOD_SLOTS, -(2**70)])
        if roll < 0.7:
            return [self._json(depth - 1) for _ in range(rng.randrange(4))]
        keys = ["name", "uuid", "total", "allocations", "resources", "traits", hostile.RP_UUID]
        return {rng.choice(keys): self._json(depth - 1) for _ in range(rng.randrange(4))}

    def _frame(self, probe: Probe, framing: str) -> None:
        """Send ``probe`` by hand with ``framing`` (a JSON write gets a JSON body)."""
        probe.framing = framing
        probe.kind = framing
        if probe.body is None:
            probe.method = "POST"
            probe.path = "/resource_providers"
            probe.body = b'{"name": "framed"}'
        if framing in ("chunked_over", "over"):
            probe.body = b" " * (self.body_limit + 1) + (probe.body or b"")


@dataclass
class Tally:
    """What came back, shared by the sending threads."""

    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    unanswered: list[dict[str, Any]] = field(default_factory=list)
    changed_count: int = 0
    refused_writes: int = 0
    accepted_changes: int = 0  # accepted writes that changed state: the watch sees changes
    unknown_outcome: int = 0  # writes whose answer never came (we reset, or it closed)
    changes_between_writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, probe: Probe, status: str, body: bytes) -> None:
        """Count one answer (``status``: the code, or ``closed``/``timeout``)."""
        with self.lock:
            self.statuses[status] += 1
            label = f"{status[0]}xx" if status[0].isdigit() else status
            self.by_kind[f"{probe.kind} {label}"] += 1
            if status.startswith("5") and len(self.server_errors) < 50:
                answer = body[:300].decode("utf-8", "replace")
                self.server_errors.append({**probe.describe(), "status": status, "answer": answer})
            if status in ("timeout", "closed") and len(self.unanswered) < 50:
                self.unanswered.append({**probe.describe(), "status": status})

    def note_change(self, probe: Probe, status: str) -> None:
        """A refused write changed the database."""
        with self.lock:
            self.changed_count += 1
            if len(self.changed) < 50:
                self.changed.append({**probe.describe(), "status": status})


@dataclass
class Run:
    """One fuzz run: where, how many, and what it found."""

    wire: fuzz_wire.Wire
    watch: fuzz_state.Watch
    requests: int
    concurrency: int
    seed: int
    body_limit: int
    tally: Tally = field(default_factory=Tally)
    gate: fuzz_state.Gate = field(default_factory=fuzz_state.Gate)
    last: object = None
    sent: int = 0

    def go(self, advance: Any) -> float:
        """Send every request from ``concurrency`` threads; the seconds it took."""
        self.last = self.watch.version()
        started = time.monotonic()
        threads = [
            threading.Thread(target=self._worker, args=(i, advance), daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started

    def _take(self) -> bool:
        """Claim one of the requests left (False: none left)."""
        with self.tally.lock:
            if self.sent >= self.requests:
                return False
            self.sent += 1
            return True

    def _worker(self, index: int, advance: Any) -> None:
        """One thread's requests, from its own seeded generator."""
        generator = Generator(random.Random(f"{self.seed}/{index}"), self.body_limit)
        while self._take():
            probe = generator.probe()
            if probe.write:
                status, body = self._checked(probe)
            else:
                with self.gate.read():
                    status, body = self.wire.send(probe)
            self.tally.note(probe, status, body)
            advance(1)

    def _checked(self, probe: Probe) -> tuple[str, bytes]:
        """Send a write alone; a refused one must leave the database as it was."""
        with self.gate.write():
            before = self.watch.version()
            if before != self.last:
                self.tally.changes_between_writes += 1  # a read (or nobody) changed it
            status, body = self.wire.send(probe)
            self.last = after = self.watch.version()
            self._judge(probe, status, after != before)
        return status, body

    def _judge(self, probe: Probe, status: str, changed: bool) -> None:
        """Count a write by outcome (under the gate); a refused one that changed state is found."""
        t = self.tally
        if status in UNKNOWN_OUTCOME:
            t.unknown_outcome += 1  # the server may have done it: we never heard
        elif status.startswith("2"):
            t.accepted_changes += changed
        else:
            t.refused_writes += 1
            if changed:
                t.note_change(probe, status)

    def result(self, seconds: float) -> dict[str, Any]:
        """The numbers of the result line."""
        t = self.tally
        server_errors = sum(n for s, n in t.statuses.items() if s.startswith("5"))
        return {
            "requests": self.requests,
            "seconds": round(seconds, 1),
            "requests_per_s": round(self.requests / seconds, 1) if seconds else 0.0,
            "statuses": dict(sorted(t.statuses.items())),
            "by_kind": dict(sorted(t.by_kind.items())),
            "server_errors": server_errors,
            "server_error_examples": t.server_errors[:10],
            "refused_writes_that_changed_state": t.changed_count,
            "changed_examples": t.changed[:10],
            "changes_between_writes": t.changes_between_writes,
            "unanswered": t.statuses.get("timeout", 0),
            "closed": t.statuses.get("closed", 0),
            "unanswered_examples": t.unanswered[:10],
            "refused_writes": t.refused_writes,
            "writes_without_answer": t.unknown_outcome,
            "accepted_writes_that_changed_state": t.accepted_changes,
            "state_watch": self.watch.name,
        }


def seed_target(wire: fuzz_wire.Wire) -> None:
    """Create the objects the requests name (already there from an earlier run: fine)."""
    headers = {"x-auth-token": "admin", "openstack-api-version": hostile.LATEST}
    for method, path, body in hostile.SEED_REQUESTS:
        payload = None if body is None else hostile.json_with_poison(body)
        probe = Probe(
            "seed", method, path, {**headers, "content-type": "application/json"}, payload
        )
        status, answer = wire.send(probe)
        if not status.startswith(("2", "4")):
            raise RuntimeError(f"seeding {method} {path}: {status} {answer[:300]!r}")


@contextlib.contextmanager
def fuzz_target(
    name: str, database_url: str, workers: int, server: str, log: Path
) -> Iterator[Target]:
    """``serve`` on a fresh SQLite file (unless a database is named), its log at ``log``; a URL."""
    if name.startswith(("http://", "https://")):
        with open_target(name) as target:
            target.database_url = database_url
            yield target
        return
    if name != "serve":
        raise typer.BadParameter("fuzz wants serve or a URL", param_hint="target")
    url = database_url or f"sqlite:///{log.parent / 'fuzz.sqlite'}"
    with berth_server(url, workers, server, log_path=str(log), quiet=True) as target:
        yield target


def log_problems(log: Path) -> list[str]:
    """The server's log lines that tell of an error, a traceback or a worker that died."""
    if not log.exists():
        return []
    text = log.read_text(encoding="utf-8", errors="replace")
    return [line[:300] for line in text.splitlines() if LOG_PROBLEM.search(line)]


def summary(result: dict[str, Any]) -> Table:
    """Counts by status, and the findings."""
    table = Table(
        "status", "requests", title=f"{result['requests']} requests in {result['seconds']}s"
    )
    for status, n in result["statuses"].items():
        table.add_row(status, str(n))
    table.add_section()
    table.add_row("5xx", str(result["server_errors"]))
    table.add_row("refused writes", str(result["refused_writes"]))
    table.add_row("writes without an answer (reset, closed)", str(result["writes_without_answer"]))
    table.add_row(
        "accepted writes that changed state", str(result["accepted_writes_that_changed_state"])
    )
    table.add_row(
        "refused writes that changed state", str(result["refused_writes_that_changed_state"])
    )
    table.add_row("changes between writes", str(result["changes_between_writes"]))
    table.add_row("no answer (timeout)", str(result["unanswered"]))
    table.add_row("connection closed without an answer", str(result["closed"]))
    table.add_row("errors in the server's log", str(result["server_log_problems"]))
    return table


def fuzz(
    target: str = typer.Option("serve", help="serve (berth on a fresh SQLite file) or a URL."),
    database_url: str = DATABASE,
    requests: int = typer.Option(100_000, help="How many requests."),
    concurrency: int = typer.Option(4, help="Requests in flight (writes go one at a time)."),
    seed: int = typer.Option(1, help="Seed of each thread's random requests."),
    server_workers: int = typer.Option(0, help="Workers of the berth served (0: one per CPU)."),
    server: str = typer.Option("granian", help="granian or gunicorn (serve)."),
    body_limit: int = typer.Option(4 * 1024 * 1024, help="The target's body size limit."),
    timeout: float = typer.Option(30.0, help="Seconds without an answer that count as a hang."),
    out: str = OUT,
) -> None:
    """Hostile requests: counts by status; a 5xx, hang, logged error or refused change fails."""
    workers = server_workers or os.cpu_count() or 1
    settings = {"requests": requests, "concurrency": concurrency, "seed": seed,
                "server_workers": workers, "server": server, "body_limit": body_limit,
                "timeout": timeout}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="berth-fuzz-") as tmp:
        log = Path(tmp) / "server.log"
        with fuzz_target(target, database_url, workers, server, log) as tg:
            result = measure(tg, settings)
        problems = log_problems(log)  # the server has stopped: its log is whole
        result["server_log_problems"] = len(problems)
        result["server_log_examples"] = problems[:10]
        emit(out, "fuzz", tg, settings, result)
    console.print(summary(result))
    failed = ("server_errors", "refused_writes_that_changed_state", "changes_between_writes")
    if sum(result[k] for k in (*failed, "unanswered", "server_log_problems")):
        shown = ("server_error_examples", "changed_examples", "server_log_examples")
        console.print({k: result[k] for k in shown}, markup=False)
        raise typer.Exit(1)


def measure(tg: Target, settings: dict[str, Any]) -> dict[str, Any]:
    """Seed ``tg``, send the requests, and count what came back."""
    wire = fuzz_wire.Wire(tg.url, settings["timeout"], settings["body_limit"])
    seed_target(wire)
    headers = {"x-auth-token": "admin", "openstack-api-version": hostile.LATEST}
    watch = fuzz_state.watch_for(
        tg.database_url, lambda path: wire.send(Probe("watch", "GET", path, headers))
    )
    run = Run(wire, watch, settings["requests"], settings["concurrency"], settings["seed"],
              settings["body_limit"])  # fmt: skip
    with bar(f"fuzz {tg.name}", run.requests) as advance:
        seconds = run.go(advance)
    return run.result(seconds)


def register(app: typer.Typer) -> None:
    """Add fuzz to ``app``."""
    app.command()(fuzz)
