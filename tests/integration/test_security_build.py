"""Repositories that try to take the machine down while they build: every step has limits."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time

import docker
import pytest

from tests.helpers.images import build_link
from tests.helpers.streams import log_text

pytestmark = pytest.mark.integration

FORK_BOMB = """#!/bin/bash
bomb() { bomb | bomb & }
bomb
sleep 15
exit 1
"""
MEMORY_BOMB = """#!/bin/bash
python -c "chunks = [bytearray(64 * 1024**2) for _ in range(200)]"
"""
DISK_BOMB = """#!/bin/bash
for i in $(seq 1 80); do head -c 10485760 /dev/zero >> big.bin; sleep 0.1; done
"""


def _repo(git_server, name: str, post_build: str) -> str:
    work = git_server.work_tree(name)
    (work / "requirements.txt").write_text("six==1.16.0\n")
    (work / "postBuild").write_text(post_build)
    (work / "postBuild").chmod(0o755)
    git_server.commit(name, "hostile postBuild")
    return git_server.link(name)


def _uid_1000_processes() -> int:
    return int(subprocess.run(["ps", "-u", "1000", "-o", "pid="], capture_output=True, text=True).stdout.count("\n"))


def test_memory_bomb_is_killed_and_the_build_fails(settings, git_server, docker_client):
    limited = dataclasses.replace(settings, build_memory_limit="512M")
    _, events = build_link(limited, _repo(git_server, "memory-bomb", MEMORY_BOMB))
    assert events[-1]["phase"] == "failed", events[-1]
    assert "build_memory_limit" in events[-1]["message"], events[-1]["message"]
    docker_client.ping()


def test_fork_bomb_is_capped_and_the_host_keeps_serving(settings, git_server, docker_client):
    limited = dataclasses.replace(settings, build_pids_limit=256)
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _uid_1000_processes())
            time.sleep(0.2)

    baseline = _uid_1000_processes()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _, events = build_link(limited, _repo(git_server, "fork-bomb", FORK_BOMB))
    finally:
        done.set()
        watcher.join()
    assert events[-1]["phase"] == "failed", events[-1]
    assert peak[0] <= baseline + 256 + 8, f"{peak[0]} processes of the repository's user at once"
    assert "Resource temporarily unavailable" in log_text(events)
    started = time.monotonic()
    docker_client.ping()
    assert time.monotonic() - started < 5, "the daemon still answers promptly"


def test_a_step_writing_past_the_disk_limit_is_stopped(settings, git_server):
    limited = dataclasses.replace(settings, build_disk_limit="200M")
    _, events = build_link(limited, _repo(git_server, "disk-bomb", DISK_BOMB))
    assert events[-1]["phase"] == "failed", events[-1]
    assert "build_disk_limit" in events[-1]["message"], events[-1]["message"]


def test_an_image_over_the_size_limit_is_removed(settings, git_server, docker_client):
    git_server.add_fixture("requirements", "too-big")
    limited = dataclasses.replace(settings, max_image_size="100M", image_prefix="bltest-toobig-")
    _, events = build_link(limited, git_server.link("too-big"))
    assert events[-1]["phase"] == "failed", events[-1]
    assert "max_image_size" in events[-1]["message"], events[-1]["message"]
    leftovers = [t for i in docker_client.images.list() for t in i.tags if "bltest-toobig-" in t]
    assert not leftovers, leftovers


def test_no_build_step_can_write_into_a_shared_cache(settings, git_server):
    """The uv cache used to be a BuildKit cache mount every build shared; a Dockerfile could name it."""
    (git_server.work_tree("cache-poison") / "Dockerfile").write_text(
        f"FROM {settings.base_image}\n"
        "RUN --mount=type=cache,id=binderlite-uv,target=/cache echo poisoned > /cache/wheel.whl\n"
    )
    git_server.commit("cache-poison", "a Dockerfile that writes into the shared uv cache")
    _, events = build_link(settings, git_server.link("cache-poison"))
    assert events[-1]["phase"] == "failed", events[-1]
    text = log_text(events).lower()
    assert "--mount" in text or "buildkit" in text, text[-2000:]


def test_the_build_network_exists_with_no_traffic_between_steps(settings):
    network = docker.from_env().networks.get(settings.build_network)
    assert network.attrs["Options"].get("com.docker.network.bridge.enable_icc") == "false"
