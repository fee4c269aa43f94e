"""The build API served by real gunicorn (gevent workers) over real builds.

gunicorn is started the way ``binderlite up`` starts it (``-c
binderlite/web/gunicorn_conf.py binderlite.web.wsgi:app``), configured only
through ``BINDERLITE_*`` variables, on 127.0.0.1 and a free port; fixture
repos are served over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import time

import docker.errors
import pytest
import requests

from binderlite.builds.pipeline import image_for
from binderlite.links import parse_link
from binderlite.settings import Settings
from tests.helpers.diagnostics import watching
from tests.helpers.net import free_port
from tests.helpers.streams import BUILD_DEADLINE, STREAM_HEADERS, log_text, stream_events
from tests.helpers.webapp import gunicorn_web

pytestmark = pytest.mark.integration

PREFIX = "bltest-web-"


@pytest.fixture(scope="module")
def web(tmp_path_factory, docker_client):
    """A gunicorn-served binderlite web app; yields its base URL and its settings."""
    root = tmp_path_factory.mktemp("web")
    environment = {
        "BINDERLITE_STATE_DIR": str(root / "state"),
        "BINDERLITE_ALLOW_LOCAL_REPOS": "true",
        "BINDERLITE_IMAGE_PREFIX": PREFIX,
        "BINDERLITE_REGISTRY": "",
        "BINDERLITE_STREAM_KEEPALIVE": "5",
        "BINDERLITE_STREAM_LINGER": "2",
        # A hub address where nothing listens: launches must fail cleanly.
        "BINDERLITE_HUB_IP": "127.0.0.1",
        "BINDERLITE_HUB_PORT": str(free_port()),
    }
    settings = Settings(state_dir=str(root / "state"), allow_local_repos=True, image_prefix=PREFIX, registry="")
    settings.ensure_dirs()
    settings.logs_dir.mkdir(exist_ok=True)
    log_path = settings.logs_dir / "gunicorn.log"  # where a failing test's report finds it
    try:
        with gunicorn_web(environment, log_path) as base, watching(settings.state_dir):
            yield base, settings
    finally:
        if os.environ.get("CI"):
            print(log_path.read_text()[-5000:])


def test_build_only_stream_reaches_ready(web, git_server, docker_client):
    base, _ = web
    git_server.add_fixture("requirements", "web-requirements")
    events = stream_events(base + f"/build/{git_server.link('web-requirements')}?build_only=true")
    phases = [ev.get("phase") for ev in events]
    assert phases[0] == "waiting", log_text(events)[-3000:]
    assert "building" in phases, log_text(events)[-3000:]
    assert phases[-1] == "ready", log_text(events)[-3000:]
    image = events[-1]["imageName"]
    assert image.startswith(PREFIX)
    assert events[-1]["message"] == "Done! Image built\n"
    docker_client.images.get(image)

    # A second request finds the image and skips the build.
    again = stream_events(base + f"/build/{git_server.link('web-requirements')}?build_only=true", deadline=120)
    assert [ev.get("phase") for ev in again] == ["built", "ready"]
    assert again[-1]["imageName"] == image


def test_launch_with_hub_down_ends_with_failed_event(web, git_server):
    base, _ = web
    git_server.add_fixture("requirements", "web-requirements")
    events = stream_events(base + f"/build/{git_server.link('web-requirements')}", deadline=BUILD_DEADLINE)
    phases = [ev.get("phase") for ev in events]
    assert "built" in phases and phases[-2:] == ["launching", "failed"], log_text(events)[-3000:]
    assert events[-1]["message"].endswith("\n")


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/build/git/not-a-link", "Spec is not of the form"),
        ("/build/nosuch/org/repo/HEAD", "Unknown provider"),
        ("/build/git/http%3A%2F%2F127.0.0.1%3A9%2Fnothing.git/main", "its host could not be reached"),
    ],
)
def test_bad_links_end_with_failed_event(web, path, expected):
    base, _ = web
    events = stream_events(base + path, deadline=120)
    assert events[-1]["phase"] == "failed"
    assert expected in events[-1]["message"]


def test_build_without_event_stream_accept_is_400(web):
    base, _ = web
    response = requests.get(base + "/build/gh/org/repo/HEAD", timeout=10)
    assert response.status_code == 400
    assert "text/event-stream" in response.json()["message"]


def test_disconnect_mid_build_does_not_stop_it(web, git_server, docker_client):
    base, settings = web
    git_server.add_fixture("requirements", "web-disconnect")
    link = git_server.link("web-disconnect")
    image = image_for(settings, parse_link(link, settings).resolve())
    with requests.get(f"{base}/build/{link}", headers=STREAM_HEADERS, stream=True, timeout=(5, 60)) as response:
        first = next(line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: "))
        assert json.loads(first[len("data: ") :])["phase"] == "waiting"
    # Nobody is watching now; the build must still finish on its own.
    end = time.monotonic() + BUILD_DEADLINE
    while True:
        try:
            docker_client.images.get(image)
            break
        except docker.errors.ImageNotFound:
            assert time.monotonic() < end, "the build stopped when its only watcher went away"
            time.sleep(2)
    events = stream_events(base + f"/build/{link}?build_only=true", deadline=120)
    assert events[0] == {"phase": "built", "imageName": image, "message": "Found built image.\n"}
    assert events[-1]["phase"] == "ready"
