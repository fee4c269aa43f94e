"""What every blueprint of the web app shares: its settings, error rendering, and the raw link path."""

from __future__ import annotations

import ipaddress
import urllib.parse

from flask import current_app, jsonify, render_template, request

from binderlite.settings import Settings

API_PREFIXES = ("/build/", "/api/", "/health", "/versions")
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def from_this_machine(peer: str | None, headers) -> bool:
    """True if a request came from this machine itself: a loopback peer, and no proxy header.

    A reverse proxy on this machine (the lab server's Caddy) connects from 127.0.0.1 too, but says
    so with ``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP``: such a request came from further away.
    """
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:  # a unix socket, or nothing
        return False
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback and not any(name in headers for name in PROXY_HEADERS)


def get_settings() -> Settings:
    """The settings of the app handling the current request."""
    return current_app.extensions["binderlite"]


def wants_json() -> bool:
    """API paths and JSON clients get JSON errors; browsers get a page."""
    if request.path.startswith(API_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(message: str, status: int):
    if wants_json():
        return jsonify(message=message), status
    return render_template("error.html", message=message, status=status), status


def raw_spec(environ: dict, prefix: str) -> tuple[str, str]:
    """(provider, spec) from the *raw* request path after ``/<prefix>/``, ``%2F`` kept escaped.

    Flask's ``<path:spec>`` is already unescaped, which breaks ``git`` and ``gl``
    specs, so the path is re-read from ``RAW_URI``/``REQUEST_URI`` (gunicorn,
    werkzeug) or, failing those, re-quoted from ``PATH_INFO``.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path = raw.split("?", 1)[0]
    if "://" in path.split("/", 1)[0]:  # absolute-form request target
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
    if not path.startswith("/"):
        path = urllib.parse.quote(
            (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1"),
            safe="/:@!$&'()*+,;=-._~",
        )
    skip = len([part for part in environ.get("SCRIPT_NAME", "").split("/") if part])
    parts = path.split("/")[1 + skip :]
    if parts and parts[0] == prefix:
        parts = parts[1:]
    provider = urllib.parse.unquote(parts[0]) if parts else ""
    spec = "/".join(parts[1:]).rstrip("/")
    return provider, spec
