"""The pages a person sees: the landing form, the launch page, and BinderHub's legacy redirect.

The launch page (``/v2/<provider>/<spec>``) is a thin shell: its script opens
the build stream, fills the log, and on ``ready`` sends the browser to the
server with ``urlpath``/``labpath``/``filepath`` applied client-side, as
BinderHub's own page does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request

from binderlite import providers
from binderlite.web.build_api import raw_spec

bp = Blueprint("pages", __name__)

# How each provider asks for its repository on the landing form (BinderHub's wording).
PROVIDER_FORM = {
    "gh": {
        "label": "GitHub repository name or URL",
        "placeholder": "org/repo or https://github.com/org/repo",
        "ref": True,
        "urlEncode": False,
    },
    "gl": {
        "label": "GitLab.com repository or URL",
        "placeholder": "group/project or https://gitlab.com/group/project",
        "ref": True,
        "urlEncode": True,
    },
    "git": {
        "label": "Arbitrary git repository URL",
        "placeholder": "https://git.example.org/lab/analysis.git",
        "ref": True,
        "urlEncode": True,
    },
    "gist": {
        "label": "Gist ID (username/gistId) or URL",
        "placeholder": "user/0123456789abcdef",
        "ref": True,
        "urlEncode": False,
    },
}
RECORD_FORM = {"label": "DOI, ID or URL", "placeholder": "10.5281/zenodo.3242074", "ref": False, "urlEncode": True}


def repo_providers() -> list[dict]:
    """Display configuration of every provider, for the landing form and ``/api/repoproviders``."""
    out = []
    for name, cls in providers.PROVIDERS.items():
        form = PROVIDER_FORM.get(name, RECORD_FORM)
        out.append(
            {
                "id": name,
                "display_name": cls.display_name or name,
                "repo": {"label": form["label"], "placeholder": form["placeholder"], "urlEncode": form["urlEncode"]},
                "ref": {"enabled": form["ref"], "default": "HEAD"},
            }
        )
    return out


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
