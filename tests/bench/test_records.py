"""Result lines and latency figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.bench import records


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, 0.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 90, 90.0),
        ([3.0, 1.0, 2.0], 100, 3.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert records.percentile(values, pct) == expected


def test_latency_summary_in_milliseconds() -> None:
    summary = records.latency_summary([0.001, 0.002, 0.003, 0.010])
    assert summary["p50_ms"] == 2.0
    assert summary["p99_ms"] == 10.0
    assert summary["max_ms"] == 10.0
    assert summary["mean_ms"] == 4.0


def test_lines_round_trip_and_broken_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    line = records.record("claims", "inproc", {"workers": 8}, {"claims_per_s": 1.5})
    records.append(path, line)
    records.append(path, line)
    records.append(None, line)  # no file: nothing happens
    with path.open("a") as fh:
        fh.write("not json\n\n[1, 2]\n")
    loaded = records.load([path])
    assert loaded == [line, line]
    assert line["machine"]["cores"] >= 1
    assert "berth" in line["versions"]
    assert len(line["machine"]["loadavg"]) == 3
