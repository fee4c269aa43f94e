"""Signing in to the web app (authenticated mode): the app is the hub's OAuth client, as BinderHub's auth_enabled.

A page opened while signed out sends the browser to the hub's OAuth
``authorize`` endpoint (the hub's own login first, if needed), which comes back
to ``/oauth_callback`` with a code; the app trades it for a hub token of the
user and keeps that token in a signed, HttpOnly cookie, then sends the browser
on to the link it first opened. Every request checks the token with the hub
(cached briefly), so a revoked or expired token, or a cookie the app did not
sign, is no sign-in: pages send the browser to sign in, the build API answers
401 and starts nothing.

The cookie is set on the app's own paths only (``COOKIE_PATHS``), never on
``/``: on one origin with the hub, a cookie on ``/`` would go with every
request to ``/user/…``, where the proxy hands it to code a repository controls.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from urllib.parse import urlencode, urlsplit

import requests
from flask import Blueprint, Flask, Response, g, jsonify, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from binderlite.errors import HubError
from binderlite.hub import addresses
from binderlite.hub.api import REQUEST_TIMEOUT, HubClient
from binderlite.hub.identity import SignedInUser
from binderlite.hub.tokens import persistent_secret
from binderlite.settings import Settings
from binderlite.web.helpers import error_response, get_settings

bp = Blueprint("signin", __name__)
COOKIE = "binderlite-session"
STATE_COOKIE = "binderlite-oauth-state"
CALLBACK = "/oauth_callback"  # the path of addresses.oauth_redirect_uri
# The app's paths that need the user; "/" itself redirects to /home/ (see the module docstring).
COOKIE_PATHS = ("/home/", "/v2/", "/build/", "/servers/", "/admin", "/signout")
SESSION_SECONDS = 14 * 24 * 3600
STATE_SECONDS = 600
USER_CACHE_SECONDS = 30.0
_users: dict[str, tuple[float, SignedInUser | None]] = {}


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(persistent_secret(settings.hub_dir / "web_cookie_secret"), salt=salt)


def session_cookie_value(settings: Settings, token: str) -> str:
    """The signed cookie that carries a user's hub token."""
    return _serializer(settings, "session").dumps(token)


def _cookie_token(settings: Settings) -> str | None:
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        return _serializer(settings, "session").loads(value, max_age=SESSION_SECONDS)
    except BadSignature:  # forged, altered or expired (SignatureExpired is a BadSignature)
        return None


def identify(settings: Settings, token: str) -> SignedInUser | None:
    """The user a hub token belongs to (None: the hub does not accept it), cached for a few seconds."""
    key = hashlib.sha256(token.encode()).hexdigest()
    cached = _users.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        resp = requests.get(
            addresses.hub_url(settings) + "/hub/api/user",
            headers={"Authorization": f"token {token}"},
            timeout=REQUEST_TIMEOUT,
        )
    except requests.RequestException:
        raise HubError("JupyterHub is not reachable to check your sign-in; is it running?", status=503) from None
    user = None
    if resp.status_code == 200 and resp.json().get("kind", "user") == "user":
        model = HubClient(settings).user(resp.json()["name"]) or {}
        user = user_from_model(model) if model else None
    for stale in [k for k, (expiry, _) in _users.items() if expiry <= time.monotonic()]:
        _users.pop(stale, None)
    _users[key] = (time.monotonic() + USER_CACHE_SECONDS, user)
    return user


def user_from_model(model: dict) -> SignedInUser:
    """A hub user model (with ``auth_state`` when the hub keeps it) as the web app sees the user.

    OAuthenticator keeps the forge's access token in ``auth_state`` beside the
    forge's user model: ``gitlab_user``, ``github_user``, or ``oauth_user`` for a
    generic OpenID Connect provider.
    """
    state = model.get("auth_state") or {}
    forge = next((f for key, f in FORGE_KEYS if key in state), None)
    return SignedInUser(
        name=model["name"],
        groups=frozenset(model.get("groups") or ()),
        admin=bool(model.get("admin")),
        forge=forge,
        forge_token=state.get("access_token") if forge else None,
    )


FORGE_KEYS = (("gitlab_user", "gitlab"), ("github_user", "github"), ("oauth_user", "oidc"))


def current_user() -> SignedInUser | None:
    """The signed-in user of this request, or None."""
    if "binderlite_user" not in g:
        settings = get_settings()
        token = _cookie_token(settings)
        g.binderlite_user = identify(settings, token) if token else None
    return g.binderlite_user


def _safe_next(url: str | None) -> str:
    """A path on this app to go on to (never another site)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url or urlsplit(url).netloc:
        return "/home/"
    return url


def sign_in_redirect(next_url: str) -> Response:
    """Send the browser to the hub to sign in, and back to ``next_url`` afterwards."""
    settings = get_settings()
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "client_id": addresses.oauth_client_id(),
            "redirect_uri": addresses.oauth_redirect_uri(settings),
            "response_type": "code",
            "state": state,
        }
    )
    response = redirect(f"{addresses.public_url(settings)}hub/api/oauth2/authorize?{query}", code=302)
    value = _serializer(settings, "state").dumps({"state": state, "next": _safe_next(next_url)})
    response.set_cookie(
        STATE_COOKIE, value, max_age=STATE_SECONDS, path=CALLBACK, httponly=True, samesite="Lax", secure=_secure()
    )
    return response


def _secure() -> bool:
    return get_settings().binder_launch_host.startswith("https:")


@bp.get(CALLBACK)
def oauth_callback():
    settings = get_settings()
    try:
        saved = _serializer(settings, "state").loads(request.cookies.get(STATE_COOKIE, ""), max_age=STATE_SECONDS)
    except BadSignature:
        saved = None
    code = request.args.get("code", "")
    if not saved or not code or not secrets.compare_digest(str(saved.get("state")), request.args.get("state", "")):
        return error_response("Sign-in did not complete (its state is missing or expired); open the link again.", 400)
    try:
        resp = requests.post(
            addresses.hub_url(settings) + "/hub/api/oauth2/token",
            data={
                "client_id": addresses.oauth_client_id(),
                "client_secret": addresses.hub_api_token(settings),
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": addresses.oauth_redirect_uri(settings),
            },
            timeout=REQUEST_TIMEOUT,
        )
    except requests.RequestException:
        return error_response("JupyterHub is not reachable to complete your sign-in; is it running?", 503)
    if resp.status_code != 200:
        return error_response("JupyterHub refused the sign-in code; open the link again.", 403)
    response = redirect(_safe_next(saved.get("next")), code=302)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK)
    value = session_cookie_value(settings, resp.json()["access_token"])
    for path in COOKIE_PATHS:
        response.set_cookie(
            COOKIE, value, max_age=SESSION_SECONDS, path=path, httponly=True, samesite="Lax", secure=_secure()
        )
    return response


@bp.get("/signout")
def signout():
    """Forget the app's cookie and sign out of the hub too."""
    response = redirect(f"{addresses.public_url(get_settings())}hub/logout", code=302)
    for path in COOKIE_PATHS:
        response.delete_cookie(COOKIE, path=path)
    return response


GATED = ("/v2/", "/build/", "/home/", "/servers/", "/admin")


def _require_user():
    """Before each request (authenticated mode): the gated paths need a signed-in user."""
    path = request.path
    if path == "/":
        return redirect(f"{request.script_root}/home/", code=302)
    if not path.startswith(GATED) or current_user() is not None:
        return None
    if path.startswith("/build/"):
        message = "Sign in first: in authenticated mode the build API needs a signed-in user (open the link instead)."
        return jsonify(message=message), 401
    if request.method != "GET":
        return error_response("Your sign-in has ended; sign in again.", 401)
    return sign_in_redirect(_original_path())


def _original_path() -> str:
    """The path and query the browser asked for, escapes kept (``%2F`` in a git link's spec)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    return raw if raw.startswith("/") else request.full_path.rstrip("?")


def init_app(app: Flask) -> None:
    """In authenticated mode: the OAuth callback and sign-out, and sign-in required on the gated paths."""
    if app.extensions["binderlite"].auth_mode != "authenticated":
        return
    app.register_blueprint(bp)
    app.before_request(_require_user)
    app.context_processor(_template_user)


def _template_user() -> dict:
    try:
        return {"signed_in": current_user()}
    except HubError:  # a page about the hub being down still renders
        return {"signed_in": None}
