"""Security headers on every kind of response of the web app, and pages that satisfy their CSP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from binderlite.settings import Settings
from binderlite.web import headers
from binderlite.web.app import create_app

WEB = Path(headers.__file__).parent
STREAM = {"Accept": "text/event-stream"}


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(state_dir=str(tmp_path), banned_specs="^evil/.*"))
    app.config.update(STREAM_KEEPALIVE=0.05, STREAM_LINGER=0)
    return app.test_client()


def csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (part.strip() for part in policy.split(";")) if d}


@pytest.mark.parametrize(
    "path, request_headers, status, mimetype",
    [
        ("/", {}, 200, "text/html"),
        ("/v2/gh/org/repo/HEAD?urlpath=lab", {}, 200, "text/html"),
        ("/nothing/here", {"Accept": "text/html"}, 404, "text/html"),
        ("/api/nothing", {}, 404, "application/json"),
        ("/build/gh/org/repo/HEAD", {}, 400, "application/json"),
        ("/build/nosuch/org/repo/HEAD", STREAM, 200, "text/event-stream"),
        ("/badge.svg", {}, 200, "image/svg+xml"),
        ("/badge_logo.svg", {}, 200, "image/svg+xml"),
        ("/versions", {}, 200, "application/json"),
        ("/static/launch.js", {}, 200, "text/javascript"),
        ("/repo/org/repo/a.ipynb", {}, 302, "text/html"),
    ],
)
def test_every_response_has_the_security_headers(client, path, request_headers, status, mimetype):
    response = client.get(path, headers=request_headers)
    response.get_data()
    assert (response.status_code, response.mimetype) == (status, mimetype)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["object-src"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]


def test_an_unexpected_error_page_has_the_headers_too(client, monkeypatch):
    from binderlite.web import pages

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(pages, "repo_providers", broken)
    response = client.get("/")
    assert response.status_code == 500 and "Traceback" not in response.get_data(as_text=True)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_launch_page_is_never_cached(client):
    assert client.get("/v2/gh/org/repo/HEAD").headers["Cache-Control"] == "no-store"


def test_badges_and_versions_keep_their_own_headers(client):
    assert client.get("/badge.svg").headers["Cache-Control"] == "public, max-age=86400"
    assert client.get("/versions").headers["Access-Control-Allow-Origin"] == "*"
    assert client.get("/api/repoproviders").headers["Access-Control-Allow-Origin"] == "*"


def test_templates_and_scripts_have_nothing_the_policy_blocks():
    """No inline script, style attribute, style element, event handler or javascript: URL."""
    for template in (WEB / "templates").glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), template.name
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html, re.IGNORECASE), template.name
    for script in (WEB / "static").glob("*.js"):
        js = script.read_text()
        assert not re.search(r"innerHTML|\.style\b|setAttribute\(\s*[\"']on|\beval\(|new Function", js), script.name


def test_rendered_pages_load_scripts_from_self_only(client):
    for path in ("/", "/v2/gh/org/repo/HEAD", "/nothing"):
        html = client.get(path, headers={"Accept": "text/html"}).get_data(as_text=True)
        for tag in re.findall(r"<script[^>]*>", html):
            assert re.search(r'\ssrc="/static/[a-z]+\.js"', tag), tag


def test_legacy_redirect_cannot_split_headers(client):
    response = client.get("/repo/a%0D%0ASet-Cookie:%20x=1/repo")
    assert response.status_code == 302 and "Set-Cookie" not in response.headers
    assert response.headers["Location"] == "/v2/gh/a%0D%0ASet-Cookie%3A%20x%3D1/repo/master"
