"""The Flask app factory: blueprints, security headers and the one error handler (see the package docstring)."""

from __future__ import annotations

import logging

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from binderlite.errors import BinderliteError
from binderlite.settings import Settings, load_settings
from binderlite.web import admin, build_api, headers, home, metrics, pages, signin, status
from binderlite.web.helpers import error_response

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """The Flask app for ``settings`` (default: loaded from config file and environment)."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.extensions["binderlite"] = settings
    # Stream timings live in app.config so tests can shorten them per app.
    app.config.setdefault("STREAM_KEEPALIVE", float(settings.stream_keepalive))
    app.config.setdefault("STREAM_LINGER", float(settings.stream_linger))

    app.register_blueprint(build_api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(status.bp)
    app.register_blueprint(metrics.bp)
    if settings.auth_mode == "authenticated":
        app.register_blueprint(home.bp)
    signin.init_app(app)
    admin.init_app(app)
    headers.init_app(app)
    app.register_error_handler(BinderliteError, _binderlite_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _binderlite_error(exc: BinderliteError):
    return error_response(exc.message, exc.status)


def _http_error(exc: HTTPException):
    if exc.code == 404:
        return error_response(f"No such page: {request.path}. Links look like /v2/<provider>/<spec>.", 404)
    return error_response(exc.description or exc.name, exc.code or 500)


def _unexpected_error(exc: Exception):
    log.exception("Unexpected error handling %s", request.path)
    return error_response(f"Unexpected server error ({exc.__class__.__name__}); see the server log.", 500)
