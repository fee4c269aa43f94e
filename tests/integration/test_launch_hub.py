"""Launches through the real hub stack: a kernel runs code, tokens stay per server, limits hold."""

from __future__ import annotations

import time

import pytest
import requests

from binderlite import launch as launcher
from binderlite.hub import addresses as hub
from binderlite.hub.api import HubClient
from binderlite.services import supervisor, table
from tests.helpers.images import build_fixture
from tests.helpers.kernel import run_code
from tests.helpers.stack import fake_resolved, launch_ready, server_container, user_of

pytestmark = pytest.mark.integration


def test_launch_runs_code_with_the_ready_token(launch_image, hubstack):
    started = time.monotonic()
    ready = launch_ready(hubstack, launch_image)
    print(f"launch took {time.monotonic() - started:.1f} s")
    assert ready["url"].startswith(f"http://127.0.0.1:{hubstack.proxy_port}/user/bltest-r1-")
    assert ready["image"] == launch_image
    assert ready["binder_request"] == "v2/git/bltest/r1/HEAD"
    assert run_code(ready["url"], ready["token"], "1+1") == "2"
    # a browser opening the link with ?token= lands in JupyterLab, not on a login page
    page = requests.get(f"{ready['url']}lab?token={ready['token']}", timeout=30)
    assert page.status_code == 200 and "JupyterLab" in page.text, page.url
    assert "/hub/" not in page.url
    # without the token nothing opens
    assert requests.get(f"{ready['url']}api/status", timeout=30).status_code == 403


def test_token_opens_only_its_own_server_and_limits_hold(launch_image, hubstack, docker_client):
    first = launch_ready(hubstack, launch_image)
    second = launch_ready(hubstack, launch_image, name="bltest/r2")
    other = requests.get(f"{second['url']}api/status", headers={"Authorization": f"token {first['token']}"}, timeout=30)
    assert other.status_code == 403
    browser = requests.get(f"{second['url']}lab?token={first['token']}", timeout=30)
    assert "JupyterLab" not in browser.text
    container = server_container(docker_client, hubstack, user_of(first))
    assert container.attrs["Config"]["User"] == "1000"
    assert container.attrs["HostConfig"]["Memory"] == 2 * 1024**3
    assert container.attrs["HostConfig"]["MemorySwap"] == 2 * 1024**3
    assert container.attrs["HostConfig"]["PidsLimit"] == hubstack.pids_limit
    assert container.exec_run("id -u").output.decode().strip() == "1000"
    env = dict(line.split("=", 1) for line in container.attrs["Config"]["Env"])
    assert env["BINDER_REPO_URL"] == first["repo_url"]
    assert env["BINDER_PERSISTENT_REQUEST"] == first["binder_persistent_request"]
    # the site's proxy reaches the running server (the hub itself is reached directly)
    assert env["HTTPS_PROXY"] == env["https_proxy"] == hubstack.https_proxy
    assert hub.hub_ip(hubstack) in env["NO_PROXY"].split(",")
    image_env = docker_client.images.get(launch_image).attrs["Config"]["Env"]
    assert not any(e.lower().startswith(("http_proxy=", "https_proxy=")) for e in image_env), "never in the image"
    for port_bindings in container.attrs["HostConfig"]["PortBindings"].values():
        assert all(b["HostIp"] == "127.0.0.1" for b in port_bindings)


def test_quotas_give_binderhub_messages(launch_image, hubstack):
    launch_ready(hubstack, launch_image, name="bltest/quota")
    per_repo = hubstack.with_overrides(per_repo_quota=1)
    events = list(launcher.launch(per_repo, fake_resolved("bltest/quota"), launch_image))
    assert events[-1]["phase"] == "failed"
    assert events[-1]["message"] == "Too many users running http://127.0.0.1:9/bltest/quota.git! Try again soon.\n"
    total = hubstack.with_overrides(total_quota=1)
    events = list(launcher.launch(total, fake_resolved("bltest/other"), launch_image))
    assert events[-1]["message"] == "Too many users on this BinderHub! Try again soon.\n"


def _user_names(settings) -> set[str]:
    return {user["name"] for user in HubClient(settings).users()}


def test_image_not_built_by_binderlite_is_refused(launch_image, hubstack, docker_client):
    docker_client.images.get("binderlite/base:bookworm").tag("bltest-unlabeled", "v1")
    try:
        before = _user_names(hubstack)
        events = list(launcher.launch(hubstack, fake_resolved("bltest/evil"), "bltest-unlabeled:v1", retry_delay=0.1))
        assert events[0]["phase"] == "launching"
        assert events[-1]["phase"] == "failed"
        assert "not built by binderlite" in events[-1]["message"]
        missing = list(launcher.launch(hubstack, fake_resolved("bltest/gone"), "bltest-nosuch:v1", retry_delay=0.1))
        assert missing[-1]["phase"] == "failed" and "not on this machine" in missing[-1]["message"]
        assert _user_names(hubstack) == before  # the temporary users are gone again
    finally:
        docker_client.images.remove("bltest-unlabeled:v1")


def test_hub_down_gives_a_failed_event_and_restart_keeps_servers(launch_image, hubstack):
    ready = launch_ready(hubstack, launch_image, name="bltest/restart")
    assert run_code(ready["url"], ready["token"], "1+1") == "2"
    supervisor.stop(hubstack, "hub")
    # the proxy still routes to the running server while the hub is down
    down = requests.get(f"{ready['url']}api/status", headers={"Authorization": f"token {ready['token']}"}, timeout=30)
    assert down.status_code == 200
    events = list(launcher.launch(hubstack, fake_resolved("bltest/nohub"), launch_image, retry_delay=0.1))
    assert events[-1]["phase"] == "failed" and "not reachable" in events[-1]["message"]
    supervisor.start(hubstack, table.hub_service(hubstack))
    assert run_code(ready["url"], ready["token"], "1+1") == "2"


def test_image_that_fails_to_start_ends_with_failed_event_and_its_output(hubstack, settings, git_server):
    image, _ = build_fixture(settings, git_server, "broken-start")
    started = time.monotonic()
    events = list(launcher.launch(hubstack, fake_resolved("bltest/broken"), image, retry_delay=0.2))
    assert events[-1]["phase"] == "failed"
    assert "start script fails on purpose" in events[-1]["message"]
    assert time.monotonic() - started < 60, "a dead server is reported at once, not after the launch timeout"
    users = HubClient(hubstack).users()
    assert not [u for u in users if u["name"].startswith("bltest-broken")], "the temporary user is removed"
