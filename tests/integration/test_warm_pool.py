"""The warm pool on the real stack: the scheduler keeps servers ready, a launch takes one at once.

The scheduler runs as ``binderlite up`` runs it (its own process); the
launches run in this process against the same state dir, as the web app's
workers do. The classroom burst (30 concurrent launches, a pool of 10) is
checked where the issue puts it, on the offline laptop
(scripts/check-offline-laptop.sh), and measured by ``benchmarks/launch.py``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from binderlite import launch as launcher
from binderlite.hub import addresses
from binderlite.hub.api import HubClient
from binderlite.launch import pool
from binderlite.scheduler import cull as culler
from binderlite.scheduler.runner import lock_held
from binderlite.settings import Settings
from tests.helpers.containers import remove_image
from tests.helpers.kernel import run_code
from tests.helpers.stack import binderlite_cli, fake_resolved, server_container, user_of

pytestmark = pytest.mark.integration
POOL_REPO, POOL_TAG = "bltest-pool-img", "v1"
POOL_IMAGE = f"{POOL_REPO}:{POOL_TAG}"


@pytest.fixture(scope="module")
def pool_image(docker_client, launch_image) -> Iterator[str]:
    """The launch image under a name of its own, so this module may rebuild it."""
    docker_client.images.get(launch_image).tag(POOL_REPO, POOL_TAG)
    yield POOL_IMAGE
    remove_image(docker_client, POOL_IMAGE)


def pooled_settings(hubstack: Settings, size: int) -> Settings:
    return dataclasses.replace(
        hubstack,
        warm_pool_size=size,
        warm_pool_images=POOL_IMAGE,
        memory_limit="1G",  # so that ten servers fit the memory bound on a small CI machine
        launch_retries=1,  # "on the first try"
        cull_every=3600,
        reconcile_every=3600,
        gc_every=3600,
    )


@contextmanager
def scheduler(settings: Settings) -> Iterator[subprocess.Popen]:
    """The scheduler process (with the warm pool job) for ``settings``; its log is printed afterwards."""
    env = {**os.environ, **settings.to_environment()}
    proc = subprocess.Popen([*binderlite_cli(), "scheduler"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not lock_held(settings) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        print("---- scheduler log (end)\n" + err[-4000:])


def ready_entries(settings: Settings, image_id: str | None = None) -> list[pool.Entry]:
    return [
        e
        for e in pool.entries(settings)
        if e.state == pool.READY and (image_id is None or e.image_id == image_id) and e.image == POOL_IMAGE
    ]


def wait_for_pool(settings: Settings, count: int, image_id: str | None = None, timeout: float = 240) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = ready_entries(settings, image_id)
        if len(ready) >= count:
            return ready
        time.sleep(0.5)
    raise AssertionError(f"the pool did not reach {count} ready servers: {pool.entries(settings)}")


def server_url(settings: Settings, user: str) -> str:
    return f"{addresses.public_url(settings)}user/{user}/"


def test_a_launch_takes_a_pooled_server_at_once_and_its_token_opens_only_that_one(hubstack, pool_image):
    settings = pooled_settings(hubstack, 2)
    with scheduler(settings):
        wait_for_pool(settings, 2)
        started = time.monotonic()
        events = list(launcher.launch(settings, fake_resolved("bltest/pool"), pool_image))
        print(f"launch from the pool took {time.monotonic() - started:.2f} s")
        assert [e["phase"] for e in events] == ["launching", "ready"], "no spawn progress: nothing was spawned"
        ready = events[-1]
        user = user_of(ready)
        assert user.startswith("pool-") and "from the warm pool" in ready["message"]
        assert ready["image"] == pool_image and ready["binder_request"] == "v2/git/bltest/pool/HEAD"
        assert run_code(ready["url"], ready["token"], "1+1") == "2"
        (other,) = [e.user for e in ready_entries(settings) if e.user != user]
        headers = {"Authorization": f"token {ready['token']}"}
        assert requests.get(server_url(settings, other) + "api/status", headers=headers, timeout=30).status_code == 403
        page = requests.get(f"{server_url(settings, other)}lab?token={ready['token']}", timeout=30)
        assert "JupyterLab" not in page.text, "another pooled server opened with this launch's token"
        replacements = wait_for_pool(settings, 2)
        assert user not in {e.user for e in replacements}, "a replacement was started"
    # the culler: the claimed server, idle now, goes with its user; the unclaimed ones stay
    time.sleep(5)
    decisions = culler.cull(dataclasses.replace(settings, cull_idle_timeout=3, cull_max_age=2))
    assert [d.user for d in decisions] == [user]
    assert HubClient(settings).user(user) is None
    assert {e.user for e in ready_entries(settings)} == {e.user for e in replacements}
    for entry in replacements:
        assert (HubClient(settings).user(entry.user) or {}).get("servers"), f"{entry.user} is still running"


def test_rebuilding_the_image_drains_the_stale_pool(hubstack, pool_image, docker_client):
    settings = pooled_settings(hubstack, 2)
    with scheduler(settings):
        stale = {e.user for e in wait_for_pool(settings, 2)}
        old_id = docker_client.images.get(pool_image).id
        # a rebuild: the same name, a new image id
        container = docker_client.containers.create(pool_image, "true")
        try:
            new = container.commit(repository=POOL_REPO, tag=POOL_TAG, changes=["LABEL bltest.rebuilt=1"])
        finally:
            container.remove(force=True)
        assert new.id != old_id
        fresh = wait_for_pool(settings, 2, image_id=new.id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(HubClient(settings).user(u) for u in stale):
            time.sleep(1)
        assert not [u for u in stale if HubClient(settings).user(u)], "the stale servers' users are deleted"
        assert stale.isdisjoint({e.user for e in pool.entries(settings)})
        ready = list(launcher.launch(settings, fake_resolved("bltest/pool"), pool_image))[-1]
        assert user_of(ready) in {e.user for e in fresh}
        assert server_container(docker_client, settings, user_of(ready)).image.id == new.id
