"""The pages a person sees: the landing form, the launch page, and BinderHub's legacy redirect.

The launch page (``/v2/<provider>/<spec>``) is a thin shell: its script opens
the build stream, fills the log, and on ``ready`` sends the browser to the
server with ``urlpath``/``labpath``/``filepath`` applied client-side, as
BinderHub's own page does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request

from binderlite.links.registry import repo_providers
from binderlite.web.helpers import raw_spec

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", providers=repo_providers())


@bp.get("/v2/<provider>/<path:_spec>")
def launch_page(provider: str, _spec: str):
    provider, spec = raw_spec(request.environ, "v2")
    build_url = f"{request.script_root}/build/{provider}/{spec}"
    return render_template("launch.html", provider=provider, spec=spec, build_url=build_url)


@bp.get("/repo/<user>/<repo>")
@bp.get("/repo/<user>/<repo>/<path:urlpath>")
def legacy_repo(user: str, repo: str, urlpath: str = ""):
    url = f"{request.script_root}/v2/gh/{user}/{repo}/master"
    if urlpath.strip("/"):
        url += "?" + urlencode({"urlpath": urlpath})
    return redirect(url, code=302)
