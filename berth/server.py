"""Run the API under granian (default) or gunicorn with several worker processes.

granian is the default because it keeps client connections alive and answered
more requests with a much lower tail in ``berth bench workers`` (10,000 hosts,
2 workers: 904 vs 688 req/s, p99 17 vs 105 ms; docs/benchmarks.md).  gunicorn
(gthread workers) remains available for sites standardised on it.
"""

from __future__ import annotations

import os
import sys

from berth.settings import Settings


def serve(settings: Settings) -> None:
    """Replace this process with the chosen server, serving berth.wsgi."""
    host, port = settings.host_port
    if settings.server == "granian":
        argv = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(settings.workers),
            # A worker that dies is replaced, as gunicorn does by default.
            "--respawn-failed-workers",
            "--log-level",
            "warning",
            "berth.wsgi:application",
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--no-control-socket",
            "--workers",
            str(settings.workers),
            "--bind",
            f"{host}:{port}",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            "5",
            "berth.wsgi:application",
        ]
    os.execv(sys.executable, argv)
