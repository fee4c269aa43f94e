"""The admin page (``/admin``): servers, builds, images, disk and the scheduler's runs, and what to do about them.

Who may see it:

- authenticated mode: the hub's admins only (``admin_users``; the hub's user
  model says ``admin``); a signed-out browser is sent to sign in, anyone else
  gets 403;
- anonymous mode: a request from this machine (the socket's peer is a
  loopback address and no proxy header — ``X-Forwarded-For``, ``Forwarded``,
  ``X-Real-IP`` — says it came from further away: a reverse proxy on this
  machine, like the lab server's Caddy, connects from 127.0.0.1 too), or a
  browser that typed ``admin_token`` into the form once; the session cookie
  then holds a keyed hash of it (never the token, never a URL), checked in
  constant time on every request, so changing the token signs everyone out.

Every action is a POST carrying Flask-WTF's CSRF token, redirects back to
the page and flashes what happened. The session cookie lives on ``/admin``
only, ``SameSite=Strict``, ``HttpOnly``: it never reaches users' servers on
the same origin.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from binderlite.builds.queue import BuildQueue
from binderlite.hub.tokens import persistent_secret
from binderlite.settings import human_size
from binderlite.web import admin_actions, admin_data
from binderlite.web.helpers import error_response, from_this_machine, get_settings
from binderlite.web.signin import current_user

bp = Blueprint("admin", __name__, url_prefix="/admin")
csrf = CSRFProtect()
SESSION_COOKIE = "binderlite-admin"
TOKEN_KEY = "admin_token"
WRONG_TOKEN_DELAY = 1.0


def is_local_request() -> bool:
    """True if the request came from this machine itself, not through a proxy."""
    return from_this_machine(request.environ.get("REMOTE_ADDR"), request.headers)


def _token_mark(token: str) -> str:
    """What the session keeps for a token: keyed with the app's secret, so the cookie does not reveal it."""
    return hmac.new(current_app.secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def has_admin_token() -> bool:
    token = get_settings().admin_token
    return bool(token) and hmac.compare_digest(str(session.get(TOKEN_KEY, "")), _token_mark(token))


def _refusal():
    """None if this request may see the admin page, else the answer it gets."""
    settings = get_settings()
    if settings.auth_mode == "authenticated":
        user = current_user()
        if user is None:  # the sign-in gate (signin.GATED) sends browsers to sign in first
            return error_response("Sign in first: the admin page is for the hub's admins.", 401)
        if user.admin:
            return None
        return error_response(
            f"The admin page is for the hub's admins (admin_users) only; {user.name} is not one.", 403
        )
    if is_local_request() or has_admin_token():
        return None
    return render_template("admin_denied.html", token_form=bool(settings.admin_token)), 403


@bp.before_request
def _guard():
    if request.endpoint != "admin.enter_token":
        refused = _refusal()
        if refused is not None:
            return refused
    if request.method == "POST":
        csrf.protect()  # 400 without a valid token (the app's HTTP error page)
    return None


@bp.post("/token")
def enter_token():
    settings = get_settings()
    if settings.auth_mode != "anonymous" or not settings.admin_token:
        return error_response("No admin token is set here (the setting admin_token, anonymous mode only).", 403)
    given = request.form.get("token", "")
    if not hmac.compare_digest(given.encode(), settings.admin_token.encode()):
        time.sleep(WRONG_TOKEN_DELAY)  # guessing goes slowly (gevent: only this request waits)
        return render_template("admin_denied.html", token_form=True, wrong=True), 403
    session[TOKEN_KEY] = _token_mark(settings.admin_token)
    flash("Admin token accepted: this browser may use the admin page.")
    return redirect(url_for("admin.overview"), code=303)


@bp.post("/forget")
def forget_token():
    session.pop(TOKEN_KEY, None)
    return redirect(url_for("admin.overview"), code=303)


@bp.get("/")
def overview():
    view = admin_data.overview(get_settings())
    return render_template("admin.html", view=view, has_token=TOKEN_KEY in session)


@bp.get("/builds/<build_id>")
def build_log(build_id: str):
    queue = BuildQueue(get_settings())
    build = queue.get(build_id)
    if build is None:
        return error_response(f"There is no build {build_id!r}.", 404)
    events, _ = queue.log(build_id).read_from(0)
    return render_template("admin_build.html", build=build, log="".join(ev.message for ev in events))


def _done(result: admin_actions.Done):
    flash(result.message, "ok" if result.ok else "refused")
    return redirect(url_for("admin.overview"), code=303)


@bp.post("/servers/stop")
def stop_server():
    user = request.form.get("user", "")
    if not user:
        return error_response("Which server? The form names none (fields user and server).", 400)
    return _done(admin_actions.stop_server(get_settings(), user, request.form.get("server", "")))


@bp.post("/builds/<build_id>/stop")
def stop_build(build_id: str):
    return _done(admin_actions.stop_build(get_settings(), build_id))


@bp.post("/builds/<build_id>/rebuild")
def rebuild(build_id: str):
    return _done(admin_actions.rebuild(get_settings(), build_id))


@bp.post("/images/delete")
def delete_image():
    return _done(admin_actions.delete_image(get_settings(), request.form.get("image", "")))


def _ago(value: datetime | float | None) -> str:
    """``3 min ago``-style age of a time (a datetime or a Unix time); ``—`` when unknown."""
    if value is None:
        return "—"
    then = value.timestamp() if isinstance(value, datetime) else float(value)
    seconds = max(0, int(time.time() - then))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _size(value: int | None) -> str:
    return "—" if value is None else human_size(value)


def _when(value: float | None) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def init_app(app: Flask) -> None:
    """The admin blueprint, its signed session cookie (on ``/admin`` only) and CSRF protection of its forms."""
    settings = app.extensions["binderlite"]
    app.secret_key = persistent_secret(settings.hub_dir / "web_cookie_secret")
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.binder_launch_host.startswith("https:"),
        WTF_CSRF_CHECK_DEFAULT=False,  # only the admin forms carry tokens; home.py's form signs its own
        # Flask-WTF's HTTPS check wants a Referer, which the pages' Referrer-Policy (no-referrer) never sends;
        # the token and the SameSite=Strict cookie it is kept in are the protection.
        WTF_CSRF_SSL_STRICT=False,
    )
    csrf.init_app(app)
    app.add_template_filter(_ago, "ago")
    app.add_template_filter(_size, "size")
    app.add_template_filter(_when, "when")
    app.register_blueprint(bp)
