"""The server command lines ``berth serve`` runs: what each setting becomes."""

from __future__ import annotations

from berth.server import commands
from berth.settings import Settings


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_granian_runs_threads_per_worker_and_one_process_per_worker() -> None:
    argvs = commands(Settings(workers=3, threads=5, server="granian"))
    assert len(argvs) == 3
    for argv in argvs:
        assert _option(argv, "--blocking-threads") == "5"
        assert _option(argv, "--workers") == "1"


def test_gunicorn_runs_threads_per_worker() -> None:
    (argv,) = commands(Settings(workers=3, threads=7, server="gunicorn"))
    assert _option(argv, "--threads") == "7"
    assert _option(argv, "--workers") == "3"


def test_threads_must_be_positive() -> None:
    try:
        Settings(threads=0)
    except ValueError as exc:
        assert "threads" in str(exc)
    else:
        raise AssertionError("threads=0 was accepted")
