"""Structured logging: JSON lines in production, readable console in development."""

from __future__ import annotations

import logging
import sys
import uuid

import structlog
from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
_MAX_REQUEST_ID = 128


def configure_logging(log_format: str = "console", level: str = "INFO") -> None:
    """Route structlog and the standard library through one renderer."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # Werkzeug's own request lines duplicate ours.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def get_logger(name: str = "bagboard") -> structlog.stdlib.BoundLogger:
    """Return a structlog logger."""
    return structlog.get_logger(name)


def _incoming_request_id() -> str:
    """Take a sane X-Request-ID from the client or make a new one."""
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    if candidate and len(candidate) <= _MAX_REQUEST_ID and candidate.isprintable() and " " not in candidate:
        return candidate
    return uuid.uuid4().hex


def register_request_context(server: Flask) -> None:
    """Bind a request id (and later the user) to every log line of a request."""

    @server.before_request
    def bind_request_id() -> None:
        structlog.contextvars.clear_contextvars()
        g.request_id = _incoming_request_id()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @server.after_request
    def echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    @server.teardown_request
    def unbind(_exc: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()
