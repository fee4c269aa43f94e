"""Status endpoints as BinderHub's: ``/health``, ``/versions``, ``/api/repoproviders`` and the badges.

``/health`` asks each service binderlite depends on with a short timeout and
answers 503 if any is down, so a load balancer or ``binderlite up`` can tell.
"""

from __future__ import annotations

from importlib import metadata

from flask import Blueprint, Response, jsonify

from binderlite import __version__
from binderlite.builds.registry import registry_reachable
from binderlite.dockerutil import docker_client
from binderlite.errors import DockerUnavailableError
from binderlite.hub.api import HubClient
from binderlite.links.registry import repo_providers
from binderlite.settings import Settings
from binderlite.web.helpers import get_settings

bp = Blueprint("status", __name__)
CHECK_TIMEOUT = 5


def check_docker(settings: Settings) -> bool:
    try:
        docker_client(settings, timeout=CHECK_TIMEOUT).close()
    except DockerUnavailableError:
        return False
    return True


def check_hub(settings: Settings) -> bool:
    return HubClient(settings).hub_answers(timeout=CHECK_TIMEOUT)


def check_registry(settings: Settings) -> bool:
    return registry_reachable(settings.registry)


def health_checks(settings: Settings) -> list[dict]:
    checks = [
        {"service": "Docker daemon", "ok": check_docker(settings)},
        {"service": "JupyterHub API", "ok": check_hub(settings)},
    ]
    if settings.registry:
        checks.append({"service": "Docker registry", "ok": check_registry(settings)})
    return checks


@bp.get("/health")
def health():
    checks = health_checks(get_settings())
    ok = all(check["ok"] for check in checks)
    return jsonify(ok=ok, checks=checks), 200 if ok else 503


@bp.get("/versions")
def versions():
    try:
        r2d = metadata.version("jupyter-repo2docker")
    except metadata.PackageNotFoundError:
        r2d = "not installed"
    response = jsonify({"builder_info": {"repo2docker-version": r2d}, "binderhub": __version__})
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/api/repoproviders")
def repoproviders():
    response = jsonify(repo_providers())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


LOGO = (
    '<g transform="translate(5 3)"><circle cx="7" cy="7" r="5.5" fill="none" stroke="#f5a252" stroke-width="2"/>'
    '<circle cx="7" cy="7" r="2" fill="#579aca"/></g>'
)


def badge(with_logo: bool) -> Response:
    """The "launch | binder" badge, optionally with a logo left of "launch"."""
    logo_width = 18 if with_logo else 0
    left, right = 46 + logo_width, 46
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" role="img" '
        'aria-label="launch binder"><title>launch binder</title>'
        f'<rect width="{left + right}" height="20" rx="3" fill="#555"/>'
        f'<path d="M{left} 0h{right - 3}a3 3 0 0 1 3 3v14a3 3 0 0 1-3 3h-{right - 3}z" fill="#579aca"/>'
        f"{LOGO if with_logo else ''}"
        '<g fill="#fff" font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">'
        f'<text x="{logo_width + 5}" y="14">launch</text><text x="{left + 5}" y="14">binder</text></g></svg>'
    )
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


@bp.get("/badge.svg")
def badge_plain():
    return badge(with_logo=False)


@bp.get("/badge_logo.svg")
def badge_logo():
    return badge(with_logo=True)
