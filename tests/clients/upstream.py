"""Run a client project's own functional tests, unchanged, against a berth server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from server import running_berth

HERE = Path(__file__).resolve().parent
# The server's settings for upstream suites: their request logs would only fill the disk.
UPSTREAM_ENV = {"BERTH_LOG_REQUESTS": "false"}


def run_upstream_suite(
    suite: Path,
    plugin: str,
    tmp_path: Path,
    env: Callable[[str], dict[str, str]],
    options: Sequence[str],
    timeout: int,
    url: str | None = None,
) -> None:
    """Run ``suite`` with pytest in a subprocess (``plugin`` from this folder, ``env(url)``
    added to the environment, ``options`` before the suite) against the berth at ``url``
    (default: a fresh one); every test must pass."""
    if url is None:
        with running_berth(env=UPSTREAM_ENV) as fresh:
            run_upstream_suite(suite, plugin, tmp_path, env, options, timeout, fresh)
        return
    environ = {
        **os.environ,
        "BERTH_URL": url,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        **env(url),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", plugin, "--rootdir", str(tmp_path), "-c", os.devnull, *options, str(suite)],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
