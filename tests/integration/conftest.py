"""Integration fixtures: a real Docker engine, fixture repos over HTTP, a real registry.

Everything a test creates is named with the ``bltest-`` prefix and removed at
the end, even when a test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
import pytest
import requests

from binderlite.settings import Settings
from tests.integration.gitserver import GitServer

TEST_PREFIX = "bltest-"
OTHER_TOOLS_PREFIXES = ("bltest-bench-", "bltest-fresh-")
REGISTRY_PORT = 15000


def _docker_or_skip():
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        if os.environ.get("CI"):
            raise
        pytest.skip("no Docker engine")
    return client


@pytest.fixture(scope="session")
def docker_client():
    return _docker_or_skip()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1, storage in a temp dir."""
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n"
    )
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{REGISTRY_PORT}"
    for _ in range(50):
        try:
            if requests.get(f"http://{address}/v2/", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("docker-registry did not start: " + (root / "registry.log").read_text()[-2000:])
    yield address
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def settings(state_dir, registry, docker_client) -> Settings:
    return Settings(
        state_dir=str(state_dir),
        image_prefix=TEST_PREFIX,
        allow_local_repos=True,
        registry=registry,
        build_concurrency=2,
        build_timeout=900,
    )


@pytest.fixture(scope="session")
def git_server(tmp_path_factory):
    server = GitServer(tmp_path_factory.mktemp("git"))
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def cleanup_test_images():
    """Remove the tests' bltest- containers and images when the session ends.

    ``bltest-bench-`` (benchmarks) and ``bltest-fresh-`` (the fresh-machine check)
    belong to tools that clean up after themselves and may be running meanwhile.
    """
    yield
    try:
        client = docker.from_env()
    except docker.errors.DockerException:
        return
    for container in client.containers.list(all=True):
        if _ours(container.name):
            container.remove(force=True)
    for image in client.images.list():
        for tag in image.tags:
            if _ours(tag.rsplit("/", 1)[-1]):
                try:
                    client.images.remove(tag, force=True)
                except docker.errors.APIError:
                    pass


def _ours(name: str) -> bool:
    return name.startswith(TEST_PREFIX) and not name.startswith(OTHER_TOOLS_PREFIXES)


def run_in_image(client, image: str, command: str) -> str:
    """Run ``command`` in a login shell in a fresh bltest- container; return its output."""
    name = f"{TEST_PREFIX}check-{os.getpid()}-{time.monotonic_ns()}"
    try:
        out = client.containers.run(image, ["bash", "-lc", command], name=name, remove=False)
        return out.decode()
    finally:
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


def binderlite_cli() -> list[str]:
    exe = shutil.which("binderlite")
    return [exe] if exe else ["python", "-m", "binderlite.cli"]


@pytest.fixture(scope="session")
def launch_image(settings, git_server) -> str:
    """A real binderlite-built image (the requirements fixture), for launch tests."""
    from binderlite.builds.pipeline import build_events
    from binderlite.links import resolve_link

    git_server.add_fixture("requirements", "launchable")
    resolved = resolve_link(git_server.link("launchable"), settings)
    events = [ev for ev in build_events(settings, resolved) if ev is not None]
    assert events[-1]["phase"] == "built", "".join(e.get("message", "") for e in events)[-3000:]
    return events[-1]["imageName"]
