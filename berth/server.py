"""Run the API under gunicorn (default) or granian with several workers."""

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
