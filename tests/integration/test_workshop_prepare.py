"""A workshop prepared while online, then its links served offline by the real stack.

``binderlite workshop prepare`` runs as the instructor runs it (the command,
online, on a links file); the web app, proxy and hub run as ``binderlite up``
starts them, with ``offline = yes``. The repositories are served over HTTP
on 127.0.0.1 by a git server of this module, stopped before the offline
rebuild to prove the bare copy serves it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from binderlite.services import supervisor, table
from binderlite.settings import Settings
from binderlite.workshop.manifest import load_manifest
from tests.helpers.gitserver import GitServer
from tests.helpers.kernel import run_code
from tests.helpers.net import free_port
from tests.helpers.stack import core_stack, delete_hub_users
from tests.helpers.streams import log_text, stream_events
from tests.integration.conftest import HUB_NETWORKS, HUB_PORTS

pytestmark = pytest.mark.integration

PREFIX = "bltest-wsp-"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def course_git(tmp_path_factory):
    server = GitServer(tmp_path_factory.mktemp("workshop-git"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def offline_stack(docker_client, tmp_path_factory):
    """Proxy + hub + web app with offline = yes (no registry: images stay on the daemon); yields the settings."""

    def settings_in(state_dir: str) -> Settings:
        return Settings(
            state_dir=state_dir,
            image_prefix=PREFIX,
            registry="",
            allow_local_repos=True,
            offline="yes",
            launch_timeout=180,
            web_host="127.0.0.1",
            web_port=free_port(),
            stream_linger=1,
            **HUB_PORTS,
            **HUB_NETWORKS,
        )

    with core_stack(settings_in, docker_client, "bltest-wsp-") as settings:
        supervisor.start(settings, table.web_service(settings))
        try:
            yield settings
        finally:
            delete_hub_users(settings)
            supervisor.stop(settings, "web")
            print(f"---- web log (end)\n{supervisor.log_tail(settings, 'web')}")


def binderlite(settings: Settings, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The ``binderlite`` command with these settings (as a config-less install would run it)."""
    config = Path(settings.state_dir) / "empty.toml"
    config.write_text("")
    env = {**os.environ, **settings.to_environment(), "PYTHONPATH": str(ROOT), "BINDERLITE_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "binderlite.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def prepared(offline_stack, course_git, tmp_path_factory):
    """The course repository prepared while online; (link, commit, image, prepare's output)."""
    commit = course_git.add_fixture("requirements", "course")
    link = course_git.link("course")
    links_file = tmp_path_factory.mktemp("handout") / "links.txt"
    links_file.write_text(f"# the handout\n{link} 3\n")
    online = offline_stack.with_overrides(offline="no")
    result = binderlite(online, "workshop", "prepare", str(links_file))
    assert result.returncode == 0, result.stderr[-4000:]
    manifest = load_manifest(offline_stack)
    assert [entry.link for entry in manifest.links] == [link]
    return link, commit, manifest.links[0].image, result


def test_prepare_records_the_link_commit_image_and_a_bare_copy(prepared, offline_stack, docker_client):
    link, commit, image, result = prepared
    assert image.startswith(PREFIX)
    assert link in result.stdout and commit[:12] in result.stdout and image in result.stdout
    manifest = load_manifest(offline_stack)
    entry = manifest.links[0]
    assert entry.resolved_ref == commit
    assert manifest.attendees == 3
    assert "binderlite/base:bookworm" in manifest.images
    copy = offline_stack.workshop_dir / entry.bare_copy
    log = subprocess.run(
        ["git", f"--git-dir={copy}", "log", "--format=%H", "-1", commit], capture_output=True, text=True
    )
    assert log.stdout.strip() == commit
    docker_client.images.get(image)
    listed = binderlite(offline_stack, "workshop", "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if link in line)
    assert commit[:12] in row and row.rstrip().endswith("yes")


def test_offline_the_handout_link_launches_the_prepared_version(prepared, offline_stack):
    link, commit, image, _ = prepared
    base = f"http://127.0.0.1:{offline_stack.web_port}"
    page = requests.get(f"{base}/v2/{link}", timeout=30)
    assert page.status_code == 200
    events = stream_events(f"{base}/build/{link}")
    assert events[-1]["phase"] == "ready", log_text(events)[-3000:]
    assert f"Offline: using the prepared version of {link} (commit {commit[:12]})" in log_text(events)
    assert events[-1]["image"] == image
    assert run_code(events[-1]["url"], events[-1]["token"], "1+1") == "2"


def test_offline_an_unprepared_link_fails_at_once(prepared, offline_stack):
    # A repository elsewhere (offline, only this machine's own repositories resolve as usual); the
    # reserved .invalid name never resolves, so even a regression could reach no one.
    link = "git/" + urllib.parse.quote("https://git.invalid/lab/not-in-the-handout.git", safe="") + "/HEAD"
    base = f"http://127.0.0.1:{offline_stack.web_port}"
    started = time.monotonic()
    events = stream_events(f"{base}/build/{link}", deadline=30)
    took = time.monotonic() - started
    assert [ev["phase"] for ev in events] == ["failed"]
    assert "was not prepared for this workshop" in events[0]["message"]
    assert "binderlite workshop list" in events[0]["message"]
    assert took < 5, f"took {took:.1f} s"


def test_offline_a_removed_image_is_rebuilt_from_the_bare_copy(prepared, offline_stack, course_git, docker_client):
    link, commit, image, _ = prepared
    delete_hub_users(offline_stack)  # the servers that use the image stop
    docker_client.images.remove(image, force=True)
    course_git.close()  # the repository's host is gone
    base = f"http://127.0.0.1:{offline_stack.web_port}"
    # Offline with a package mirror, builds install from the workshop's index, which `binderlite up` runs.
    assert table.wants_index(offline_stack), "prepare collected no package mirror"
    supervisor.start(offline_stack, table.index_service(offline_stack))
    try:
        events = stream_events(f"{base}/build/{link}?build_only=true")
    finally:
        supervisor.stop(offline_stack, "index")
    text = log_text(events)
    assert events[-1]["phase"] == "ready", text[-3000:]
    assert "from its local copy" in text
    assert events[-1]["imageName"] == image
    docker_client.images.get(image)
