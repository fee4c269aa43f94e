"""Which images pods may run: only those binderlite built, named as the cluster's nodes pull them.

The launcher names images as the build pushed them, ``<registry>/<image_prefix><name>:<tag>``.
A pod gets the same repository path and tag under ``kube_image_registry`` (the
registry as the nodes name it; their k3s ``registries.yaml`` mirrors it to
binderlite's registry). Anything else — Docker Hub, another registry, a name
outside the prefix, a digest — is refused before a pod exists. As the docker
backend reads the image's labels on this machine, this asks binderlite's own
registry for the image's config and wants repo2docker's label in it: a name
under the prefix is not enough (the base image shares it).
"""

from __future__ import annotations

import re

import requests

from binderlite.builds.registry import BUILT_LABEL, MANIFEST_TYPES, REGISTRY_TIMEOUT, split_image
from binderlite.settings import Settings

_PATH = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+|/[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ImageRefused(ValueError):
    """The image is not one binderlite built; the message says why, for the user."""


def pull_registry(settings: Settings) -> str:
    """The registry name the nodes pull from."""
    return settings.kube_image_registry or settings.registry


def pod_image(settings: Settings, image: str) -> str:
    """``image`` as the nodes pull it; ImageRefused unless it is under binderlite's registry and prefix."""
    source = f"{settings.registry}/{settings.image_prefix}"
    if not settings.registry or not image.startswith(source):
        raise ImageRefused(f"Image {image} is not in binderlite's registry under {source}; refusing to start it.")
    path, _, tag = image[len(settings.registry) + 1 :].rpartition(":")
    if not _PATH.fullmatch(path) or not _TAG.fullmatch(tag) or "@" in image:
        raise ImageRefused(f"Image {image} is not a name binderlite gives its images (path:tag); refusing it.")
    return f"{pull_registry(settings)}/{path}:{tag}"


def built_by_binderlite(registry: str, image: str, timeout: float = REGISTRY_TIMEOUT) -> str | None:
    """None if ``registry`` holds ``image`` with repo2docker's label, else why not (for the user)."""
    _, repository, tag = split_image(image)
    base = f"http://{registry}/v2/{repository}"
    try:
        resp = requests.get(f"{base}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}, timeout=timeout)
        if resp.status_code == 404:
            return f"Image {image} is not in binderlite's registry; build it with binderlite first."
        resp.raise_for_status()
        config = resp.json().get("config") or {}
        if not config.get("digest"):
            return f"Image {image} has a manifest binderlite does not push (a list or an old schema); refusing it."
        blob = requests.get(f"{base}/blobs/{config['digest']}", timeout=timeout)
        blob.raise_for_status()
        labels = (blob.json().get("config") or {}).get("Labels") or {}
    except (requests.RequestException, ValueError) as exc:
        return f"binderlite's registry ({registry}) did not answer about {image} ({exc.__class__.__name__})."
    if BUILT_LABEL not in labels:
        return f"Image {image} was not built by binderlite (no {BUILT_LABEL} label); refusing to start it."
    return None


def checked_pod_image(settings: Settings, image: str) -> str:
    """The name the nodes pull ``image`` by, once binderlite's registry shows binderlite built it."""
    pulled = pod_image(settings, image)
    problem = built_by_binderlite(settings.registry, image)
    if problem:
        raise ImageRefused(problem)
    return pulled
