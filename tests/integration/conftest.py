"""Integration fixtures: a real Docker engine, fixture repos over HTTP, a real registry, a real hub stack.

Everything a test creates is named with the ``bltest-`` prefix and removed at
the end, even when a test fails. When a test fails, its report also shows the
logs of the containers it started and the end of the running stacks' service
logs (``pytest_runtest_makereport`` below).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from binderlite.settings import Settings
from tests.helpers import diagnostics
from tests.helpers.containers import TEST_PREFIX, docker_or_none, remove_containers_and_images
from tests.helpers.gitserver import GitServer
from tests.helpers.images import build_fixture
from tests.helpers.registry import docker_registry
from tests.helpers.stack import core_stack

REGISTRY_PORT = 15000
HUB_PORTS = {"proxy_port": 18740, "proxy_api_port": 18741, "hub_port": 18781}
HUB_NETWORKS = {"server_network": "bltest-srv", "build_network": "bltest-bld"}  # never a real install's networks
HUB_REGISTRY = "127.0.0.1:15740"
TEST_PROXY = "http://bltest-proxy.invalid:3128"  # never contacted: the hub is on NO_PROXY


@pytest.fixture(scope="session")
def docker_client():
    client = docker_or_none()
    if client is None:
        if os.environ.get("CI"):
            raise RuntimeError("no Docker engine answers (CI needs one)")
        pytest.skip("no Docker engine")
    return client


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1, storage in a temp dir."""
    with docker_registry(tmp_path_factory.mktemp("registry"), REGISTRY_PORT) as address:
        yield address


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
    client = docker_or_none()
    if client is not None:
        remove_containers_and_images(client)


@pytest.fixture(scope="session")
def launch_image(settings, git_server) -> str:
    """A real binderlite-built image (the requirements fixture), for launch tests."""
    image, _ = build_fixture(settings, git_server, "requirements", "launchable")
    return image


@pytest.fixture(scope="module")
def hubstack(docker_client):
    """Settings of a running registry + proxy + hub (started as `binderlite up` starts them); removed afterwards.

    The stack has Docker networks of its own (``HUB_NETWORKS``: a second install on this
    machine, never sharing the servers' rules with a real one), non-default ports and a temp state dir.

    Teardown deletes the hub's users, removes this stack's containers (even
    when a test failed) and prints the end of each service's log.
    """
    # the proxy and the registry run as the service user: the state dir is one it may enter
    settings_in = functools.partial(
        Settings,
        registry=HUB_REGISTRY,
        launch_timeout=180,
        http_proxy=TEST_PROXY,
        https_proxy=TEST_PROXY,
        **HUB_PORTS,
        **HUB_NETWORKS,
    )
    with core_stack(lambda state_dir: settings_in(state_dir=state_dir), docker_client, "bltest-hub-") as settings:
        yield settings


# ---- logs of what a failed test started -------------------------------------------------
CONTAINERS_BEFORE = pytest.StashKey[set]()


@pytest.fixture(autouse=True)
def containers_before(request):
    """Remember the containers that exist before the test, so a failure shows only those it started."""
    before = diagnostics.container_ids()
    if before is not None:
        request.node.stash[CONTAINERS_BEFORE] = before


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure (setup, test or teardown), add the containers' and services' logs to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for title, text in diagnostics.failure_sections(item.stash.get(CONTAINERS_BEFORE, None)):
            report.sections.append((f"{title} [{report.when}]", text))
