"""``berth bench fuzz``: its requests, its state check, and a short run against ``berth serve``."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from typer.testing import CliRunner

from berth.bench import fuzz, records, report
from berth.bench.fuzz_state import Gate
from berth.cli import app


def _probes(seed: str, n: int) -> list[fuzz.Probe]:
    generator = fuzz.Generator(random.Random(seed), body_limit=1000)
    return [generator.probe() for _ in range(n)]


def test_the_same_seed_sends_the_same_requests() -> None:
    assert _probes("a", 200) == _probes("a", 200)
    assert _probes("a", 200) != _probes("b", 200)


def test_every_kind_of_request_is_drawn() -> None:
    kinds = {p.kind for p in _probes("kinds", 5000)}
    assert set(fuzz.BODY_KINDS) | set(fuzz.FRAMINGS) | {"no_body"} <= kinds


class FakeWire:
    """Answers 400 to everything; a body containing b"leak" changes the state anyway."""

    def __init__(self) -> None:
        self.state = 0

    def send(self, probe: fuzz.Probe) -> tuple[str, bytes]:
        if probe.body and b"leak" in probe.body:
            self.state += 1
        return "400", b""


class FakeWatch:
    name = "fake"

    def __init__(self, wire: FakeWire) -> None:
        self.wire = wire

    def version(self) -> object:
        return self.wire.state


def test_a_refused_write_that_changes_state_is_found() -> None:
    wire = FakeWire()
    run = fuzz.Run(wire, FakeWatch(wire), 0, 1, 1, 1000)  # type: ignore[arg-type]
    run.last = 0
    leak = fuzz.Probe("good", "PUT", "/x", {}, b'{"leak": 1}')
    run._checked(leak)
    run._checked(fuzz.Probe("good", "PUT", "/x", {}, b"{}"))
    assert run.tally.changed_count == 1 and run.tally.refused_writes == 2
    assert run.tally.changed[0]["body"] == '{"leak": 1}'
    wire.state += 1  # something changed between writes
    run._checked(fuzz.Probe("good", "PUT", "/x", {}, b"{}"))
    assert run.tally.changes_between_writes == 1


def test_a_write_without_an_answer_is_neither_accepted_nor_refused() -> None:
    """We reset it after sending: the server may well have done it."""
    run = fuzz.Run(FakeWire(), FakeWatch(FakeWire()), 0, 1, 1, 1000)  # type: ignore[arg-type]
    run._judge(fuzz.Probe("reset", "PUT", "/x", {}), "reset", changed=True)
    assert run.tally.unknown_outcome == 1 and run.tally.changed_count == 0


def test_a_write_waits_for_the_reads_and_then_has_the_gate_alone() -> None:
    gate, log = Gate(), []

    def write() -> None:
        with gate.write():
            log.append("write")

    with gate.read():
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(0.1)
        assert log == []  # blocked by the read
    writer.join(2)
    assert log == ["write"]


def test_a_short_run_against_berth_serve(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    args = ["bench", "fuzz", "--requests", "400", "--server-workers", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (line,) = records.load([out])
    assert line["kind"] == "fuzz" and line["result"]["state_watch"] == "sqlite data_version"
    found = line["result"]
    assert found["server_errors"] == 0 and found["refused_writes_that_changed_state"] == 0
    assert found["accepted_writes_that_changed_state"] > 0  # the watch does see changes
    assert found["server_log_problems"] == 0 and found["unanswered"] == 0
    assert sum(found["statuses"].values()) == 400
    assert "## Hostile requests (berth bench fuzz)" in report.render([line])
