"""The pages a person sees: the landing form, the launch page, and BinderHub's legacy redirect.

In classroom mode the landing page also shows the address attendees open, as
text and as a QR code (an inline SVG: no image request, nothing to load).

The launch page (``/v2/<provider>/<spec>``) is a thin shell: its script opens
the build stream, fills the log, and on ``ready`` sends the browser to the
server with ``urlpath``/``labpath``/``filepath`` applied client-side, as
BinderHub's own page does, but only to a page inside that server (see
``static/launch.js``). It is never cached: it leads to a token.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import Blueprint, jsonify, make_response, redirect, render_template, request
from markupsafe import Markup

from binderlite.access.rules import Decision, check_launch
from binderlite.links.registry import describe_link, repo_providers
from binderlite.web.helpers import get_settings, raw_spec, wants_json
from binderlite.web.signin import current_user
from binderlite.workshop.classroom import qr_svg

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def classroom_card() -> dict:
    """In classroom mode, the address attendees open and its QR code, for the landing page."""
    settings = get_settings()
    if not settings.classroom:
        return {}
    url = settings.binder_launch_host
    return {"classroom_url": url, "classroom_qr": Markup(qr_svg(url))}


@bp.get("/")
def index():
    return render_template("index.html", providers=repo_providers())


@bp.get("/v2/<provider>/<path:_spec>")
def launch_page(provider: str, _spec: str):
    provider, spec = raw_spec(request.environ, "v2")
    build_url = f"{request.script_root}/build/{provider}/{spec}"
    repository, ref = describe_link(provider, spec, get_settings())
    user = current_user() if get_settings().auth_mode == "authenticated" else None
    if user is not None:
        decision = check_launch(get_settings(), user, f"{provider}/{spec}", repository if "://" in repository else None)
        if not decision.allowed:
            return refused(decision)
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


def refused(decision: Decision):
    """The 403 answer: which rule refused the launch, and whom to ask."""
    if wants_json():
        return jsonify(message=decision.message, rule=decision.rule_name, contact=decision.contact), 403
    page = render_template("refused.html", message=decision.message, rule=decision.rule_name, contact=decision.contact)
    return page, 403
