"""The scheduler on the real stack: idle and max-age culling, busy kernels, reconciliation, one process."""

from __future__ import annotations

import dataclasses
import subprocess
import time
import uuid

import pytest
import requests

from binderlite.hub.api import HubClient, ProxyClient
from binderlite.scheduler import cull as culler
from binderlite.scheduler import reconcile
from binderlite.scheduler.runner import lock_held, read_counts
from tests.helpers.containers import TEST_PREFIX
from tests.helpers.kernel import start_busy_cell
from tests.helpers.stack import binderlite_cli, launch_ready, server_container, user_of

pytestmark = pytest.mark.integration


def _hub_user(settings, name: str) -> dict | None:
    return HubClient(settings).user(name)


def test_idle_server_is_culled_and_temporary_user_deleted(hubstack, launch_image):
    ready = launch_ready(hubstack, launch_image, name="bltest/idle")
    user = user_of(ready)
    quick = dataclasses.replace(hubstack, cull_idle_timeout=3, cull_max_age=0)
    time.sleep(6)
    culled = culler.cull(quick)
    assert user in [d.user for d in culled]
    assert _hub_user(hubstack, user) is None
    assert requests.get(ready["url"] + "api/status", params={"token": ready["token"]}, timeout=10).status_code != 200


def test_busy_kernel_is_not_idle_but_max_age_culls_it(hubstack, launch_image):
    ready = launch_ready(hubstack, launch_image, name="bltest/busy")
    user = user_of(ready)
    start_busy_cell(ready["url"], ready["token"], 120)
    time.sleep(8)
    quick = dataclasses.replace(hubstack, cull_idle_timeout=3, cull_max_age=0)
    assert user not in [d.user for d in culler.cull(quick, dry_run=True)], "a busy kernel counts as activity"
    aged = dataclasses.replace(hubstack, cull_idle_timeout=3600, cull_max_age=5)
    decisions = culler.cull(aged)
    assert any(d.user == user and d.reason.startswith("age") for d in decisions)
    assert _hub_user(hubstack, user) is None


def test_orphan_container_removed_and_killed_container_cleared(hubstack, launch_image, docker_client):
    orphan = docker_client.containers.run(
        launch_image,
        ["sleep", "300"],
        name=f"{TEST_PREFIX}orphan-{uuid.uuid4().hex[:6]}",
        detach=True,
        labels={
            "binderlite.managed": "1",
            "binderlite.instance": hubstack.state_dir,
            "binderlite.user": "ghost",
            "binderlite.server": "",
        },
    )
    ready = launch_ready(hubstack, launch_image, name="bltest/killed")
    user = user_of(ready)
    victim = server_container(docker_client, hubstack, user)
    victim.kill()
    done = reconcile.reconcile(hubstack, grace=0)
    assert orphan.name in done["containers"]
    assert any(s.startswith(user) for s in done["servers"]) or not (_hub_user(hubstack, user) or {}).get("servers")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_hub_user(hubstack, user) or {}).get("servers"):
        time.sleep(1)
    assert not (_hub_user(hubstack, user) or {}).get("servers"), "the hub still lists the dead server"


def test_second_scheduler_does_not_run_jobs(hubstack):
    env = dataclasses.replace(hubstack, cull_every=3600, reconcile_every=3600, gc_every=3600).to_environment()
    import os

    env = {**os.environ, **env}
    first = subprocess.Popen([*binderlite_cli(), "scheduler"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not lock_held(hubstack) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lock_held(hubstack)
        second = subprocess.run([*binderlite_cli(), "scheduler"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 4, "another scheduler holds the lock: unavailable"
        assert f"another binderlite scheduler (pid {first.pid})" in second.stderr
        assert first.poll() is None, "the first scheduler keeps running"
    finally:
        first.terminate()
        first.wait(timeout=20)


def test_running_scheduler_culls_an_idle_server_on_schedule(hubstack, launch_image):
    """The scheduler process, as `binderlite up` starts it, removes an idle server by itself."""
    import os

    quick = dataclasses.replace(hubstack, cull_every=2, cull_idle_timeout=4, reconcile_every=3600, gc_every=3600)
    ready = launch_ready(hubstack, launch_image, name="bltest/scheduled")
    user = user_of(ready)
    env = {**os.environ, **quick.to_environment()}
    scheduler = subprocess.Popen([*binderlite_cli(), "scheduler"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _hub_user(hubstack, user) is not None and time.monotonic() < deadline:
            time.sleep(1)
        culled = _hub_user(hubstack, user) is None
    finally:
        scheduler.terminate()
        _, err = scheduler.communicate(timeout=20)
    assert culled, "the idle server was not culled on schedule:\n" + err[-3000:]
    assert "culled 1 servers" in err and user in err, err[-2000:]
    assert read_counts(hubstack).get("culled_servers", 0) >= 1, "the job's counts are kept for /metrics"


def test_cull_dry_run_lists_without_culling(hubstack, launch_image):
    import os

    ready = launch_ready(hubstack, launch_image, name="bltest/dryrun")
    user = user_of(ready)
    time.sleep(3)
    env = {**os.environ, **dataclasses.replace(hubstack, cull_idle_timeout=1).to_environment()}
    out = subprocess.run([*binderlite_cli(), "cull", "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "would cull" in out.stdout and user in out.stdout
    assert _hub_user(hubstack, user) is not None, "a dry run changes nothing"


def test_stale_proxy_route_is_dropped(hubstack):
    proxy = ProxyClient(hubstack)
    route = "/user/bltest-ghost-route"
    proxy.add_route(route, "http://127.0.0.1:9")
    done = reconcile.reconcile(hubstack, grace=0)
    assert route in done["routes"]
    assert route not in proxy.routes()
