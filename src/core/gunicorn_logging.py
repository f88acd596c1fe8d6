"""A gunicorn logger whose access lines are structured like the app's own."""

from __future__ import annotations

from typing import Any

import structlog
from gunicorn.glogging import Logger

from src.core.logging import configure_logging


class StructlogGunicornLogger(Logger):
    """Write gunicorn's access log through structlog (JSON in production)."""

    def setup(self, cfg: Any) -> None:
        """Keep gunicorn's error log handlers and configure structlog for access lines."""
        super().setup(cfg)
        import os

        configure_logging(
            os.environ.get(
                "BAGBOARD_LOG_FORMAT", "json" if os.environ.get("BAGBOARD_ENV") == "production" else "console"
            ),
            os.environ.get("BAGBOARD_LOG_LEVEL", "INFO"),
        )
        self._access = structlog.get_logger("bagboard.access")  # propagates to our handler, not gunicorn's

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """Log one request: method, path, status, duration, request id."""
        if not self.cfg.accesslog:
            return
        headers = dict(resp.headers) if hasattr(resp, "headers") else {}
        self._access.info(
            "http_request",
            method=environ.get("REQUEST_METHOD"),
            path=environ.get("PATH_INFO"),
            status=getattr(resp, "status_code", None) or str(resp.status).split(" ")[0],
            duration_ms=round(request_time.total_seconds() * 1000, 1),
            bytes=getattr(resp, "sent", None),
            remote=environ.get("REMOTE_ADDR"),
            request_id=headers.get("X-Request-ID"),
            user_agent=environ.get("HTTP_USER_AGENT"),
        )
