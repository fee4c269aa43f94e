"""The web app with Flask's test client; the build pipeline and the launcher are faked."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from binderlite import launch as launcher
from binderlite.builds import pipeline
from binderlite.errors import RefNotFoundError
from binderlite.events import Event
from binderlite.links import ResolvedRepo
from binderlite.links import registry as providers
from binderlite.settings import Settings
from binderlite.web import status
from binderlite.web.app import create_app

SHA = "a" * 40
STREAM = {"Accept": "text/event-stream"}


def resolved_for(provider, spec):
    return ResolvedRepo(
        provider=provider.name,
        spec=provider.spec,
        repo_url="https://example.org/a/b.git",
        unresolved_ref="main",
        resolved_ref=SHA,
        resolved_spec=f"x/{SHA}",
        ref_url="https://example.org/a/b.git",
        build_slug="https://example.org/a/b.git",
    )


@pytest.fixture
def app(tmp_path):
    app = create_app(Settings(state_dir=str(tmp_path), banned_specs="^evil/.*"))
    app.config.update(STREAM_KEEPALIVE=0.05, STREAM_LINGER=0)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def fake_pipeline(monkeypatch):
    """Resolve without network, build instantly, launch instantly; records what was asked."""
    calls = {}

    def resolve(self):
        calls["resolved"] = (self.name, self.spec)
        calls["url"] = getattr(self, "url", None)
        calls["ref"] = getattr(self, "unresolved_ref", None)
        return resolved_for(self, self.spec)

    def build_events(settings, resolved):
        yield Event.waiting("Waiting for build to start...")
        yield None
        yield Event.building("Step 1/2\n")
        yield Event.log("plain log line\n")
        yield Event.built("img:1", "Built image, launching...")

    def launch(settings, resolved, image):
        calls["launched"] = image
        yield Event.launching("Launching server...")
        yield Event.ready("server running", url="http://h/user/u/", token="t", image=image)

    for cls in providers.PROVIDERS.values():
        monkeypatch.setattr(cls, "resolve", resolve)
    monkeypatch.setattr(pipeline, "build_events", build_events)
    monkeypatch.setattr(launcher, "launch", launch)
    return calls


def events(response) -> list[dict]:
    text = response.get_data(as_text=True)
    return [json.loads(chunk[len("data: ") :]) for chunk in text.split("\n\n") if chunk.startswith("data: ")]


def test_build_requires_event_stream_accept(client):
    response = client.get("/build/gh/org/repo/HEAD")
    assert response.status_code == 400
    assert "text/event-stream" in response.get_json()["message"]


def test_build_then_launch_event_order_and_headers(client, fake_pipeline):
    response = client.get("/build/gh/org/repo/HEAD", headers=STREAM)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache, no-store"
    assert response.headers["X-Accel-Buffering"] == "no"
    phases = [ev.get("phase") for ev in events(response)]
    assert phases == ["waiting", "building", None, "built", "launching", "ready"]
    assert fake_pipeline["launched"] == "img:1"
    ready = events(response)[-1]
    assert ready["url"] == "http://h/user/u/" and ready["token"] == "t"


def test_build_only_ends_with_ready_and_does_not_launch(client, fake_pipeline):
    response = client.get("/build/gh/org/repo/HEAD?build_only=true", headers=STREAM)
    evs = events(response)
    assert [ev.get("phase") for ev in evs][-2:] == ["built", "ready"]
    assert evs[-1] == {"phase": "ready", "imageName": "img:1", "message": "Done! Image built\n"}
    assert "launched" not in fake_pipeline


def test_trailing_slash_is_dropped(client, fake_pipeline):
    client.get("/build/gh/org/repo/HEAD/", headers=STREAM).get_data()
    assert fake_pipeline["resolved"] == ("gh", "org/repo/HEAD")


def test_git_spec_is_taken_from_the_raw_path(client, fake_pipeline):
    response = client.get("/build/git/https%3A%2F%2Fexample.org%2Fa%2Frepo.git/main?build_only=true", headers=STREAM)
    assert events(response)[-1]["phase"] == "ready"
    assert fake_pipeline["resolved"] == ("git", "https%3A%2F%2Fexample.org%2Fa%2Frepo.git/main")
    assert fake_pipeline["url"] == "https://example.org/a/repo.git"
    assert fake_pipeline["ref"] == "main"


def test_gitlab_namespace_stays_escaped(client, fake_pipeline):
    client.get("/build/gl/group%2Fsub%2Frepo/feature%2Fx", headers=STREAM).get_data()
    assert fake_pipeline["resolved"] == ("gl", "group%2Fsub%2Frepo/feature%2Fx")


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/build/nosuch/org/repo/HEAD", "Unknown provider 'nosuch'"),
        ("/build/git/no-ref-here", "Spec is not of the form"),
        ("/build/gh/evil/repo/HEAD", "Sorry, evil/repo/HEAD is not allowed to launch."),
    ],
)
def test_bad_links_end_with_a_failed_event(client, path, expected):
    response = client.get(path, headers=STREAM)
    assert response.status_code == 200
    evs = events(response)
    assert len(evs) == 1 and evs[0]["phase"] == "failed"
    assert expected in evs[0]["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_unresolvable_ref_uses_binderhub_wording(client, monkeypatch):
    def resolve(self):
        raise RefNotFoundError("git ls-remote found no ref 'nope'.")

    monkeypatch.setattr(providers.PROVIDERS["gh"], "resolve", resolve)
    evs = events(client.get("/build/gh/org/repo/nope", headers=STREAM))
    assert evs[-1]["phase"] == "failed"
    assert evs[-1]["message"].startswith("Could not resolve ref for gh:org/repo/nope. Double check your URL")
    assert "no ref 'nope'" in evs[-1]["message"]


def test_unexpected_exception_becomes_failed_event(client, fake_pipeline, monkeypatch):
    def broken(settings, resolved):
        yield Event.waiting("Waiting for build to start...")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "build_events", broken)
    evs = events(client.get("/build/gh/org/repo/HEAD", headers=STREAM))
    assert [ev["phase"] for ev in evs] == ["waiting", "failed"]
    assert "RuntimeError" in evs[-1]["message"] and "server log" in evs[-1]["message"]
    assert "disk on fire" not in evs[-1]["message"], "an unexpected error's details stay in the server log"


def test_failed_build_does_not_launch(client, fake_pipeline, monkeypatch):
    def failing(settings, resolved):
        yield Event.failed("pip exploded")

    monkeypatch.setattr(pipeline, "build_events", failing)
    evs = events(client.get("/build/gh/org/repo/HEAD", headers=STREAM))
    assert [ev["phase"] for ev in evs] == ["failed"]
    assert "launched" not in fake_pipeline


def test_keepalive_sent_when_idle(client, fake_pipeline, monkeypatch):
    def slow(settings, resolved):
        time.sleep(0.4)
        yield Event.built("img:1", "Found built image, launching...")

    monkeypatch.setattr(pipeline, "build_events", slow)
    text = client.get("/build/gh/org/repo/HEAD?build_only=true", headers=STREAM).get_data(as_text=True)
    assert text.startswith(":keepalive\n\n")
    assert text.index(":keepalive") < text.index('"built"')


def test_stream_lingers_after_ready(app, fake_pipeline):
    app.config.update(STREAM_LINGER=0.3)
    started = time.monotonic()
    text = app.test_client().get("/build/gh/org/repo/HEAD?build_only=true", headers=STREAM).get_data(as_text=True)
    assert time.monotonic() - started >= 0.3
    assert text.endswith(":keepalive\n\n")


def test_legacy_repo_redirect(client):
    response = client.get("/repo/org/repo/notebooks/a.ipynb")
    assert response.status_code == 302
    assert response.headers["Location"] == "/v2/gh/org/repo/master?urlpath=notebooks%2Fa.ipynb"
    assert client.get("/repo/org/repo").headers["Location"] == "/v2/gh/org/repo/master"


def test_health_is_503_when_a_check_fails(client, monkeypatch):
    monkeypatch.setattr(status, "check_docker", lambda settings: True)
    monkeypatch.setattr(status, "check_hub", lambda settings: False)
    monkeypatch.setattr(status, "check_registry", lambda settings: True)
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["ok"] is False
    assert {"service": "JupyterHub API", "ok": False} in body["checks"]
    assert client.head("/health").status_code == 503


def test_health_ok(client, monkeypatch):
    for name in ("check_docker", "check_hub", "check_registry"):
        monkeypatch.setattr(status, name, lambda settings: True)
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json()["ok"] is True


def test_versions_has_cors_header(client):
    response = client.get("/versions")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert body["binderhub"] and "repo2docker-version" in body["builder_info"]


def test_repoproviders_and_badges(client):
    ids = [p["id"] for p in client.get("/api/repoproviders").get_json()]
    assert ids[:4] == ["gh", "gl", "git", "gist"]
    for path in ("/badge.svg", "/badge_logo.svg"):
        response = client.get(path)
        assert response.mimetype == "image/svg+xml" and b"launch" in response.data


def test_landing_page_renders_form(client):
    html = client.get("/").get_data(as_text=True)
    assert 'id="launch-form"' in html and 'value="gh"' in html and "index.js" in html
    assert client.get("/static/index.js").status_code == 200


def test_launch_page_points_at_the_raw_build_url(client):
    html = client.get("/v2/git/https%3A%2F%2Fexample.org%2Fa.git/main?urlpath=lab").get_data(as_text=True)
    assert 'data-build-url="/build/git/https%3A%2F%2Fexample.org%2Fa.git/main"' in html
    assert 'id="log"' in html and "launch.js" in html
    assert client.get("/static/launch.js").status_code == 200


def test_unknown_route_is_404_json_for_api_and_html_for_browsers(client):
    api = client.get("/api/nothing")
    assert api.status_code == 404 and "message" in api.get_json()
    page = client.get("/nothing", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_head_request_starts_nothing(client, fake_pipeline):
    response = client.head("/build/gh/org/repo/HEAD", headers=STREAM)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    assert "resolved" not in fake_pipeline, "a HEAD request resolved (and would have built) the link"


def test_launch_page_names_the_repository_as_a_person_reads_it(client):
    page = client.get("/v2/git/https%3A%2F%2Fgit.example.org%2Flab%2Fanalysis.git/main").get_data(as_text=True)
    assert "https://git.example.org/lab/analysis.git" in page and "<code>main</code>" in page
    assert "https%3A%2F%2F" not in page.split("data-build-url")[0], "the heading shows no escaped spec"
    gh = client.get("/v2/gh/org/repo/HEAD").get_data(as_text=True)
    assert "https://github.com/org/repo" in gh
    odd = client.get("/v2/nosuch/x/y")
    assert odd.status_code == 200 and "nosuch/x/y" in odd.get_data(as_text=True)


def test_gunicorns_master_imports_only_the_settings_for_its_config():
    """The master reads gunicorn_conf before gevent patches its workers: what it imports stays unpatched.

    A threading.Lock made there (the sandbox's rule lock was one) blocks a whole
    worker when two of its greenlets take it: launches stalled until the worker died.
    """
    code = (
        "import sys, binderlite.web.gunicorn_conf; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('binderlite', 'prometheus_client')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [
        "binderlite",
        "binderlite.errors",
        "binderlite.observe",
        "binderlite.observe.multiproc",  # child_exit's; it imports no prometheus_client (its lock) at the top
        "binderlite.settings",
        "binderlite.web",
        "binderlite.web.gunicorn_conf",
    ]
