"""The ``bltest-`` names everything tests make, and removing what tests and stacks leave behind."""

from __future__ import annotations

import time

import docker
import docker.errors

from binderlite.settings import Settings

TEST_PREFIX = "bltest-"
# Tools that clean up after themselves and may be running meanwhile: the benchmarks, the fresh-machine check,
# the systemd units' check and the lab-server check.
OTHER_TOOLS_PREFIXES = ("bltest-bench-", "bltest-fresh-", "bltest-units-", "bltest-lab-", "bltest-machine-")


def docker_or_none() -> docker.DockerClient | None:
    """A client of the local Docker engine, or None if it does not answer."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


def ours(name: str) -> bool:
    """True for a container or image name (without registry) that belongs to the test sessions."""
    return name.startswith(TEST_PREFIX) and not name.startswith(OTHER_TOOLS_PREFIXES)


def remove_containers_and_images(
    client: docker.DockerClient, prefix: str = TEST_PREFIX, keep: tuple[str, ...] = OTHER_TOOLS_PREFIXES
) -> None:
    """Remove every container, image and volume named ``prefix…`` but not ``keep…`` (image names without registry)."""

    def matches(name: str) -> bool:
        return name.startswith(prefix) and not name.startswith(keep)

    for container in client.containers.list(all=True):
        if matches(container.name):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
    for image in client.images.list():
        for tag in image.tags:
            if matches(tag.rsplit("/", 1)[-1]):
                remove_image(client, tag)
    for volume in client.volumes.list():  # persistent homes of authenticated-mode stacks
        if matches(volume.name):
            try:
                volume.remove(force=True)
            except docker.errors.APIError:
                pass


def remove_image(client: docker.DockerClient, name: str) -> None:
    """Remove an image by name, if it is still there and no container keeps it."""
    try:
        client.images.remove(name, force=True)
    except docker.errors.APIError:
        pass


def stack_label(settings: Settings) -> str:
    """The label every container of a stack (its users' servers) carries."""
    return f"binderlite.instance={settings.state_dir}"


def remove_stack_containers(client: docker.DockerClient, settings: Settings, wait: float = 30) -> None:
    """Remove this stack's containers; 404/409 mean the hub is already removing them."""
    label = {"label": stack_label(settings)}
    deadline = time.monotonic() + wait
    while (containers := client.containers.list(all=True, filters=label)) and time.monotonic() < deadline:
        for container in containers:
            try:
                container.remove(force=True)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):
                    raise
        time.sleep(0.5)
