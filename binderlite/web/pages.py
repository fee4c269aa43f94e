"""The pages a person sees: the landing form, the launch page, and BinderHub's legacy redirect.

The launch page (``/v2/<provider>/<spec>``) is a thin shell: its script opens
the build stream, fills the log, and on ``ready`` sends the browser to the
server with ``urlpath``/``labpath``/``filepath`` applied client-side, as
BinderHub's own page does, but only to a page inside that server (see
``static/launch.js``). It is never cached: it leads to a token.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import Blueprint, make_response, redirect, render_template, request

from binderlite.links.registry import describe_link, repo_providers
from binderlite.web.helpers import get_settings, raw_spec

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("index.html", providers=repo_providers())


@bp.get("/v2/<provider>/<path:_spec>")
def launch_page(provider: str, _spec: str):
    provider, spec = raw_spec(request.environ, "v2")
    build_url = f"{request.script_root}/build/{provider}/{spec}"
    repository, ref = describe_link(provider, spec, get_settings())
    page = render_template("launch.html", repository=repository, ref=ref, build_url=build_url)
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/repo/<user>/<repo>")
@bp.get("/repo/<user>/<repo>/<path:urlpath>")
def legacy_repo(user: str, repo: str, urlpath: str = ""):
    url = f"{request.script_root}/v2/gh/{quote(user, safe='')}/{quote(repo, safe='')}/master"
    if urlpath.strip("/"):
        url += "?" + urlencode({"urlpath": urlpath})
    return redirect(url, code=302)
