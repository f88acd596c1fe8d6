"""Turn errors into one clear line for the user and a structured log line for us."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from src.core.logging import get_logger

log = get_logger("bagboard.errors")


def _wants_json(url_base: str) -> bool:
    return request.path.startswith(f"{url_base}_dash-") or request.is_json


def _json_error(status: int, message: str) -> Response:
    response = jsonify(error=message, request_id=g.get("request_id"))
    response.status_code = status
    return response


def register_error_handlers(server: Flask, callback_map: dict[str, Any], url_base: str) -> None:
    """Reject malformed callback requests with 400 and never leak a traceback."""
    update_path = f"{url_base}_dash-update-component"

    @server.before_request
    def validate_callback_request() -> Response | None:
        if request.path != update_path or request.method != "POST":
            return None
        body = request.get_json(silent=True)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("output"), str)
            or body["output"] not in callback_map
            or not isinstance(body.get("inputs", []), list)
            or not isinstance(body.get("state", []), list)
            or not all(isinstance(item, dict | list) for item in [*body.get("inputs", []), *body.get("state", [])])
        ):
            log.warning("bad_callback_request", path=request.path)
            return _json_error(400, "malformed callback request")
        return None

    @server.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response | HTTPException:
        if _wants_json(url_base):
            return _json_error(error.code or 500, error.description or error.name)
        return error

    @server.errorhandler(ValueError)
    def handle_bad_value(error: ValueError) -> Response:
        # Validation (coordinates, names, numbers) raises ValueError with a message meant for the user.
        if request.path == update_path:
            log.warning("callback_input_refused", error=str(error))
            return _json_error(400, str(error).splitlines()[0] if str(error) else "invalid input")
        return handle_unexpected(error)

    @server.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled_error", path=request.path, error_type=type(error).__name__)
        if _wants_json(url_base):
            return _json_error(500, "Something went wrong on the server; the error was logged.")
        return Response(
            f"Something went wrong on the server; the error was logged (request {g.get('request_id', '-')}).",
            status=500,
            mimetype="text/plain",
        )
