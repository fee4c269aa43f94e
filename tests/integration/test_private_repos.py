"""Private repositories from a real private git server (lighttpd + git http-backend with basic auth; sshd).

Resolution with and without credentials (what the user reads), builds through
the real pipeline (queue, detached worker, sandboxed fetch, repo2docker) over
HTTPS-style basic auth and over SSH with a deploy key, and the anonymous web
path refusing a private repository with 403.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from binderlite.builds.pipeline import build_events, image_for
from binderlite.errors import BinderliteError
from binderlite.links import resolve_link
from binderlite.settings import Settings
from binderlite.web import build_api
from tests.helpers.images import run_in_image
from tests.helpers.privategit import private_git_server
from tests.helpers.streams import log_text

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    with private_git_server() as srv:
        srv.add_fixture("requirements", "thesis")
        srv.add_fixture("runtime-txt", "lab-notes")
        yield srv


def with_secrets(settings: Settings, server, path, **kwargs) -> Settings:
    return dataclasses.replace(settings, credentials_file=str(server.write_credentials(path, **kwargs)))


def resolve_error(settings: Settings, link: str) -> BinderliteError:
    with pytest.raises(BinderliteError) as err:
        resolve_link(link, settings)
    return err.value


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_without_credentials_a_private_repo_is_not_found(settings, server, tmp_path, transport):
    url = server.http_url("thesis") if transport == "http" else server.ssh_url("thesis")
    empty = tmp_path / "credentials.toml"
    empty.write_text("")
    empty.chmod(0o600)
    err = resolve_error(dataclasses.replace(settings, credentials_file=str(empty)), server.link(url))
    assert err.status == 404
    assert err.message == f"Could not read the repository {url}: it does not exist, or is not public."


def test_a_wrong_token_is_named_as_the_cause(settings, server, tmp_path):
    wrong = with_secrets(settings, server, tmp_path / "credentials.toml", token="not-the-token")
    err = resolve_error(wrong, server.link(server.http_url("thesis")))
    assert err.status == 404
    assert f"the credential for 127.0.0.1:{server.http_port} in the secrets file does not give access" in err.message
    assert "not-the-token" not in err.message


def test_a_link_with_the_token_in_it_is_refused(settings, server):
    url = server.http_url("thesis").replace("http://", f"http://deploy:{server.token}@")
    err = resolve_error(settings, server.link(url))
    assert err.status == 400
    assert "Never paste a credential into a link" in err.message
    assert server.token not in err.message


@pytest.mark.parametrize("transport,name", [("http", "thesis"), ("ssh", "lab-notes")])
def test_private_repo_resolves_and_builds_with_credentials(settings, server, tmp_path, docker_client, transport, name):
    private = with_secrets(settings, server, tmp_path / "credentials.toml")
    url = server.http_url(name) if transport == "http" else server.ssh_url(name)
    resolved = resolve_link(server.link(url), private)
    assert resolved.private
    image = image_for(private, resolved)
    assert name not in image and resolved.resolved_ref not in image
    assert image.startswith(f"{settings.registry}/{settings.image_prefix}private-")

    events = [ev for ev in build_events(private, resolved) if ev is not None]
    log = log_text(events)
    assert events[-1]["phase"] == "built", log[-3000:]
    assert events[-1]["imageName"] == image
    expected = "six==1.16.0" if name == "thesis" else "python-3"
    assert expected in run_in_image(docker_client, image, "cat requirements.txt runtime.txt 2>/dev/null; true")
    assert server.token not in log


def test_private_build_without_its_credential_fails_clearly(settings, server, tmp_path):
    """The secrets file lost the host between resolution and fetch: the worker says why, in users' words."""
    path = tmp_path / "credentials.toml"
    private = with_secrets(settings, server, path)
    server.add_fixture("requirements", "gone")
    resolved = resolve_link(server.link(server.http_url("gone")), private)
    path.write_text("")
    events = [ev for ev in build_events(private, resolved) if ev is not None]
    assert events[-1]["phase"] == "failed"
    assert f"Could not fetch {server.http_url('gone')}: it does not exist, or is not public." in log_text(events)


def test_anonymous_web_path_refuses_a_private_repo(settings, server, tmp_path):
    private = with_secrets(settings, server, tmp_path / "credentials.toml")
    assert private.auth_mode == "anonymous"
    provider, _, spec = server.link(server.http_url("thesis")).partition("/")
    events = list(build_api.events_for(private, provider, spec, False, threading.Event()))
    assert [ev["phase"] for ev in events] == ["failed"]
    assert events[0]["status_code"] == 403
    assert events[0]["message"].startswith(f"{server.http_url('thesis')} is a private repository.")
