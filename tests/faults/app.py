"""A WSGI app for the granian signal tests: answers 200 (``/slow`` after a second).

``FAULT_APP_IMPORT_S`` makes its import take that many seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

time.sleep(float(os.environ.get("FAULT_APP_IMPORT_S", "0")))


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1)
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]
