"""The signed-in user's pages (authenticated mode): the landing form with who is signed in, and their servers.

``/home/`` is the landing page of the authenticated mode: the launch form,
the user's name with "sign out", and each server the user runs (one per
repository) with "open" and "stop". Stopping posts a form carrying a token
signed for this user, so another site cannot stop a user's server.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, abort, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeSerializer

from binderlite.hub import addresses
from binderlite.hub.api import HubClient
from binderlite.hub.tokens import persistent_secret
from binderlite.links.registry import repo_providers
from binderlite.web.helpers import error_response, get_settings
from binderlite.web.signin import current_user

bp = Blueprint("home", __name__)


def _csrf(name: str) -> str:
    secret = persistent_secret(get_settings().hub_dir / "web_cookie_secret")
    return URLSafeSerializer(secret, salt="stop-server").dumps(name)


def running_servers(user: str) -> list[dict]:
    """The user's servers: name, repository, whether it is ready, and its URL."""
    model = HubClient(get_settings()).user(user) or {}
    public = addresses.public_url(get_settings())
    servers = []
    for name, server in sorted((model.get("servers") or {}).items()):
        if not name:
            continue
        options = server.get("user_options") or {}
        servers.append(
            {
                "name": name,
                "repository": options.get("repo_url", name),
                "ready": bool(server.get("ready")),
                "url": f"{public}user/{quote(user)}/{quote(name)}/",
            }
        )
    return servers


@bp.get("/home/")
def home():
    user = current_user()
    assert user is not None  # the sign-in gate runs first
    return render_template(
        "index.html",
        providers=repo_providers(),
        servers=running_servers(user.name),
        csrf=_csrf(user.name),
    )


@bp.post("/servers/<server>/stop")
def stop(server: str):
    user = current_user()
    assert user is not None
    secret = persistent_secret(get_settings().hub_dir / "web_cookie_secret")
    try:
        ok = URLSafeSerializer(secret, salt="stop-server").loads(request.form.get("csrf", "")) == user.name
    except BadSignature:
        ok = False
    if not ok:
        return error_response("This stop request did not come from your servers page; open it and try again.", 403)
    if server not in {s["name"] for s in running_servers(user.name)}:
        abort(404)
    HubClient(get_settings()).stop_server(user.name, server)
    return redirect(f"{request.script_root}/home/", code=303)
