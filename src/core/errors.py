"""Turn errors into one clear line for the user and a structured log line for us."""

from __future__ import annotations

from typing import Any

from dash.exceptions import CallbackException
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from src.core.logging import get_logger

log = get_logger("bagboard.errors")
# A callback body nests a few levels (outputs, wildcard ids, grid rows); far deeper is an attack on the parser.
MAX_JSON_DEPTH = 32


def _wants_json(url_base: str) -> bool:
    return request.path.startswith(f"{url_base}_dash-") or request.is_json


def _json_error(status: int, message: str) -> Response:
    response = jsonify(error=message, request_id=g.get("request_id"))
    response.status_code = status
    return response


def _is_id(value: Any) -> bool:
    """Tell whether value is a component id: a string, or a dict of strings to plain values."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items())
    return isinstance(value, str)


def _is_spec(item: Any) -> bool:
    """Tell whether item is one {id, property} entry, or a list of them (a wildcard's matches)."""
    entries = item if isinstance(item, list) else [item]
    return all(isinstance(e, dict) and _is_id(e.get("id")) and isinstance(e.get("property"), str) for e in entries)


def nesting_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Return how deeply lists and dicts nest in value, stopping once past limit (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return deepest


def _callback_body() -> Any:
    """Parse the callback request body, or None when it is not JSON or nests too deeply to parse."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # the parser itself gives up on very deep nesting
        return None


def _well_formed(body: Any, callback_map: dict[str, Any]) -> bool:
    """Tell whether a callback request has the shape the browser sends for a registered callback."""
    if not isinstance(body, dict) or not isinstance(body.get("output"), str) or body["output"] not in callback_map:
        return False
    spec = callback_map[body["output"]]
    if "callback" not in spec:  # a clientside callback: the browser runs it, the server has nothing to run
        return False
    for field in ("inputs", "state"):
        items = body.get(field, [])
        if not isinstance(items, list) or len(items) != len(spec[field]) or not all(map(_is_spec, items)):
            return False
    multi = body["output"].startswith("..")
    listed = body.get("outputs") if multi else [body.get("outputs")]
    expected = len(body["output"].strip(".").split("...")) if multi else 1
    if not isinstance(listed, list) or len(listed) != expected or not all(map(_is_spec, listed)):
        return False
    changed = body.get("changedPropIds", [])
    return isinstance(changed, list) and all(isinstance(item, str) for item in changed)


def register_error_handlers(server: Flask, callback_map: dict[str, Any], url_base: str) -> None:
    """Reject malformed callback requests with 400 and never leak a traceback."""
    update_path = f"{url_base}_dash-update-component"

    @server.before_request
    def validate_callback_request() -> Response | None:
        if request.path != update_path or request.method != "POST":
            return None
        body = _callback_body()
        if nesting_depth(body) > MAX_JSON_DEPTH:
            log.warning("callback_request_too_deep", path=request.path)
            return _json_error(400, f"callback request nests deeper than {MAX_JSON_DEPTH} levels")
        if not _well_formed(body, callback_map):
            log.warning("bad_callback_request", path=request.path)
            return _json_error(400, "malformed callback request")
        return None

    @server.errorhandler(CallbackException)
    def handle_callback_mismatch(error: CallbackException) -> Response:
        # Dash's own checks of a request against the callback's definition (outputs, wildcard ids).
        if request.path == update_path:
            log.warning("callback_request_mismatch", error_type=type(error).__name__)
            return _json_error(400, "callback request does not match the callback")
        return handle_unexpected(error)

    @server.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response | HTTPException:
        if _wants_json(url_base):
            return _json_error(error.code or 500, error.description or error.name)
        if isinstance(error, RequestEntityTooLarge):
            log.warning("request_too_large", path=request.path, length=request.content_length)
            return Response((error.description or error.name) + "\n", status=413, mimetype="text/plain")
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
