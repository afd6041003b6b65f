"""Structured logging (structlog): JSON lines or console output."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from berth.settings import Settings


def configure(settings: Settings) -> None:
    """Set up structlog and the standard library logger once per process."""
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    renderer: structlog.typing.Processor
    if settings.log_json:
        # orjson: several times cheaper than json.dumps, and a line per request adds up.
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line (message and newline together): print() writes them apart, so
        # lines from other threads or worker processes sharing stderr could land between.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _orjson_dumps(event: object, **_: object) -> str:
    """structlog's serializer: JSON text; values orjson cannot encode become their repr."""
    return orjson.dumps(event, default=repr).decode()
