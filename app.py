"""bagboard's entry point: `gunicorn app:server`, `flask --app app …` or `python app.py`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dash
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from pages import View, compare, coverage, download_manager, fleet, home, run_analysis
from src.auth import init_auth
from src.cli import register_cli
from src.components.filter_bar import register_filter_callbacks
from src.components.sidebar import register_sidebar_callbacks
from src.config import Settings
from src.core.cache import init_cache
from src.core.errors import register_error_handlers
from src.core.extensions import get_services
from src.core.frames import bp as frames_blueprint
from src.core.health import bp as health_blueprint
from src.core.logging import configure_logging, get_logger, register_request_context
from src.core.memory import register_memory_trim
from src.core.security import register_request_limits, register_security_headers
from src.layout import register_router, serve_shell
from src.services.container import ServiceContainer

ASSETS = Path(__file__).resolve().parent / "assets"
# Views are registered explicitly, in sidebar order: one line per view package.
VIEWS: tuple[View, ...] = (
    home.view,
    coverage.view,
    run_analysis.view,
    fleet.view,
    compare.view,
    download_manager.view,
)


def create_app(settings: Settings | None = None) -> dash.Dash:
    """Build the Dash app and its Flask server from settings (default: the environment)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    server = create_server(settings)
    app = dash.Dash(
        __name__,
        server=server,
        url_base_pathname=settings.url_base_pathname,
        assets_folder=str(ASSETS),
        title="bagboard",
        update_title=None,
        suppress_callback_exceptions=True,  # views are drawn by the router, not all at once
        serve_locally=True,
    )
    app.layout = lambda: serve_shell(VIEWS, settings.url_base_pathname)
    register_views(app, VIEWS)
    register_error_handlers(server, app.callback_map, settings.url_base_pathname)
    # After every callback is registered: the CSP carries the hashes of Dash's inline scripts.
    register_security_headers(server, settings, app.csp_hashes)
    warn_about_settings(settings)
    return app


def create_server(settings: Settings) -> Flask:
    """Build the Flask server: config, cache, logging context, auth, health, CLI."""
    server = Flask(__name__, static_folder=None)  # Dash serves assets/; nothing else is static
    register_config(server, settings)
    shared_cache = init_cache(server, settings)
    register_request_context(server)  # first, so every later hook logs with the request id
    register_memory_trim(server)
    init_auth(server, settings, shared_cache)
    register_request_limits(server, settings)  # after auth: the login form sets its own smaller limit
    server.register_blueprint(health_blueprint)
    server.register_blueprint(frames_blueprint)
    services = ServiceContainer.initialize(settings, shared_cache)
    services.warm_up()
    server.extensions["bagboard.services"] = services
    register_cli(server)
    if settings.proxy_hops:
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)  # type: ignore[method-assign]
    return server


def register_config(server: Flask, settings: Settings) -> None:
    """Copy settings into Flask's config, with hardened session cookies."""
    server.config.update(
        SECRET_KEY=settings.secret_key,
        BAGBOARD_SETTINGS=settings,
        SESSION_COOKIE_NAME="bagboard_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.is_production,
        # The cookie's own expiry; the server ends a session sooner (idle timeout, sign-out, revocation).
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_lifetime_hours),
        TESTING=settings.env == "test",
    )


def register_views(app: dash.Dash, views: tuple[View, ...]) -> None:
    """Add the router, the shared filter bar and every view's callbacks."""
    register_router(app, views)
    register_sidebar_callbacks(app, views, app.config.url_base_pathname)
    register_filter_callbacks(app, lambda: get_services().data_state.get_filter_options)
    for view in views:
        if view.register_callbacks:
            view.register_callbacks(app)


def warn_about_settings(settings: Settings) -> None:
    """Log the settings that are allowed but deserve a second look."""
    log = get_logger("bagboard")
    if settings.secret_key_generated:
        log.warning("ephemeral_secret_key", hint="sessions end on restart; set BAGBOARD_SECRET_KEY")
    log.info("app_created", env=settings.env, raw_bucket=settings.raw_bucket, ml_bucket=settings.ml_bucket)


app = create_app()
server = app.server

if __name__ == "__main__":
    # The development server only ever listens on loopback; use gunicorn to serve a team.
    app.run(host="127.0.0.1", port=8050, debug=False)
