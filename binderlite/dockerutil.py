"""The Docker daemon connection and the few image questions everything asks."""

from __future__ import annotations

import os

import docker
import docker.errors
from docker import DockerClient

from binderlite.errors import DockerUnavailableError
from binderlite.settings import Settings

DOCKER_TIMEOUT = 120


def docker_client(settings: Settings, timeout: int = DOCKER_TIMEOUT) -> DockerClient:
    """A client for the configured daemon, or a clear error if it does not answer."""
    try:
        if settings.docker_host:
            client = docker.DockerClient(base_url=settings.docker_host, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        where = settings.docker_host or "the local socket (/var/run/docker.sock)"
        raise DockerUnavailableError(
            f"Docker daemon not reachable at {where} — is dockerd running? "
            f"(scripts/start-dockerd.sh starts it) [{exc.__class__.__name__}]"
        ) from None
    return client


def local_image_exists(client: DockerClient, name: str) -> bool:
    """True if the daemon has an image with this exact name:tag."""
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def docker_root(client: DockerClient) -> str:
    """The folder the daemon keeps its data in (the disk image GC's water marks are about)."""
    return client.info().get("DockerRootDir", "/var/lib/docker")


def docker_cli_env(settings: Settings) -> dict[str, str]:
    """The environment for a ``docker`` command that talks to the configured daemon."""
    env = dict(os.environ)
    if settings.docker_host:
        env["DOCKER_HOST"] = settings.docker_host
    return env
