"""Headers a browser can enforce, and request limits, on every response the server sends.

The Content-Security-Policy allows scripts only from this origin plus the hashes of the inline scripts Dash writes
into its page (the renderer bootstrap and clientside callbacks, from `app.csp_hashes()`), so an injected script does
not run. Plotly builds web workers from blob: URLs and draws images from data: and blob: URLs; styles allow
'unsafe-inline' because Plotly, React and dash-ag-grid set style elements and attributes at run time (styles cannot
run code). Nothing loads from another origin: every asset is served locally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dash.fingerprint import check_fingerprint
from flask import Flask, Response, abort, request

from src.config import Settings

MIB = 1024 * 1024
# A year: component bundles and assets carry a version or an mtime in their URL, so a new build is a new URL.
IMMUTABLE = "max-age=31536000, immutable"
HSTS = "max-age=31536000; includeSubDomains"


def content_security_policy(script_hashes: Sequence[str]) -> str:
    """Return the CSP header value, allowing the given inline-script hashes."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def is_versioned_static(path: str, url_base: str) -> bool:
    """Tell whether path is a bundle or asset whose URL changes whenever its content does."""
    # Dash fingerprints bundle URLs as name.v4_4_1m1712345678.js, and links assets with ?m=<mtime>.
    if path.startswith(f"{url_base}_dash-component-suites/"):
        return check_fingerprint(path)[1]
    return path.startswith(f"{url_base}assets/") and "m" in request.args


def register_security_headers(server: Flask, settings: Settings, script_hashes: Callable[[], Sequence[str]]) -> None:
    """Add the security headers and the caching policy to every response, errors included."""
    url_base = settings.url_base_pathname
    policy: list[str] = []  # built on first use: the hashes exist once every callback is registered

    @server.after_request
    def add_security_headers(response: Response) -> Response:
        if not policy:
            policy.append(content_security_policy(script_hashes()))
        headers = response.headers
        headers["Content-Security-Policy"] = policy[0]
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if settings.is_production:
            headers["Strict-Transport-Security"] = HSTS
        path = request.path
        bundle = path.startswith(f"{url_base}_dash-component-suites/")
        if response.status_code in (200, 304) and (bundle or path.startswith(f"{url_base}assets/")):
            # Bundles are behind the wall: private keeps shared proxies from holding them.
            scope = "private" if bundle else "public"
            versioned = is_versioned_static(path, url_base)
            headers["Cache-Control"] = f"{scope}, {IMMUTABLE}" if versioned else f"{scope}, no-cache"
            if response.status_code == 200 and not response.is_streamed and not response.get_etag()[0]:
                response.add_etag()
                response.make_conditional(request)  # If-None-Match on the same bundle: 304, no body
        elif response.status_code in (200, 304) and "Cache-Control" in headers:
            pass  # a view that chose its own caching (frame images: private, keyed by extraction version)
        else:
            # Pages, callbacks, login and errors: never kept by a browser or a proxy.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response


def register_request_limits(server: Flask, settings: Settings) -> None:
    """Refuse request bodies above the limit with 413 before anything reads them."""
    server.config["MAX_CONTENT_LENGTH"] = settings.max_request_mb * MIB

    @server.before_request
    def refuse_large_bodies() -> None:
        limit = request.max_content_length
        if limit is None:
            return
        too_large = request.content_length is not None and request.content_length > limit
        if (
            request.content_length is None
            and request.method in ("POST", "PUT", "PATCH")
            and request.environ.get("wsgi.input_terminated")
        ):
            # A chunked body has no length to check: werkzeug stops reading at the limit and would hand the
            # truncated body on (a 400 at best), so read it here (it is cached for the view) and measure it.
            too_large = len(request.get_data(cache=True)) >= limit
        if too_large:
            abort(413, description=f"Request body too large: the limit is {describe_bytes(limit)}.")


def describe_bytes(size: int) -> str:
    """Return a byte count the way a person reads it (16 KiB, 8 MiB)."""
    return f"{size // MIB} MiB" if size >= MIB else f"{size // 1024} KiB"
