"""The image registry: does it hold an image, and push one to it.

binderlite runs Debian's ``docker-registry`` on 127.0.0.1 (see services);
images named ``<registry>/<prefix>…`` are pushed there after a build, so a
second node (k3s) can pull them. "Does the image exist" asks the local
daemon first, then the registry's HTTP API.
"""

from __future__ import annotations

from collections.abc import Callable

import requests
from docker import DockerClient

REGISTRY_TIMEOUT = 5
BUILT_LABEL = "repo2docker.version"  # what every image binderlite built carries, and no base image
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def split_image(image: str) -> tuple[str, str, str]:
    """``host:port/name:tag`` → (registry host, repository name, tag)."""
    name, _, tag = image.rpartition(":")
    host, _, repository = name.partition("/")
    return host, repository, tag


def registry_has_image(registry: str, image: str) -> bool:
    """True if ``registry`` serves a manifest for ``image`` (False if unreachable)."""
    host, repository, tag = split_image(image)
    if not registry or host != registry:
        return False
    url = f"http://{registry}/v2/{repository}/manifests/{tag}"
    try:
        resp = requests.head(url, headers={"Accept": MANIFEST_TYPES}, timeout=REGISTRY_TIMEOUT)
    except requests.RequestException:
        return False
    return resp.status_code == 200


def registry_reachable(registry: str) -> bool:
    """True if the registry answers its API root."""
    try:
        resp = requests.get(f"http://{registry}/v2/", timeout=REGISTRY_TIMEOUT)
    except requests.RequestException:
        return False
    return resp.status_code in (200, 401)


def push_image(client: DockerClient, image: str, log: Callable[[str], None]) -> None:
    """Push ``image`` to the registry its name starts with; raise RuntimeError on failure."""
    repository, _, tag = image.rpartition(":")
    last_status = None
    for line in client.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(line["error"])
        status = line.get("status")
        if status and status != last_status and "id" not in line:
            log(f"{status}\n")
            last_status = status
