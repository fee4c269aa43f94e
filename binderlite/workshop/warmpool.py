"""What the warm pool should hold: which images, how many servers of each, and each image's Docker id.

The pool keeps ``pool_size_for(settings)`` started servers of every image of
``pool_images(settings)``. Sizes, by ``warm_pool_size``:

- ``0``: no pool; ``N``: N servers per image;
- no pool when users sign in (``auth_mode = "authenticated"``): their launches
  start their own named servers, with their persistent folders;
- ``-1`` (auto): in a workshop (its manifest exists), the manifest's expected
  attendees per image; elsewhere no pool.

Either way the pool is **bounded by memory**: all pooled servers together
fit in the machine's memory less a reserve (``RESERVE_BYTES`` for the
system and binderlite's services, plus one build at ``build_memory_limit``),
counting each server at its full ``memory_limit`` (an idle server uses far
less, but a claimed one may grow to it); and they never exceed
``total_quota``. The bound is split evenly between the images.

Images come from ``warm_pool_images`` (image names, or links such as
``gh/org/repo/main`` looked up in the workshop manifest only: this never
touches the network) or, when that is empty, the manifest's prepared images.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import docker.errors

from binderlite.builds.pipeline import image_for
from binderlite.dockerutil import docker_client
from binderlite.links.registry import PROVIDERS
from binderlite.settings import Settings, parse_size
from binderlite.workshop.manifest import Manifest, PreparedLink, load_manifest

log = logging.getLogger("binderlite.workshop.warmpool")
RESERVE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class PoolImage:
    """One image to keep warm, and the ``user_options`` its servers start with (as a launch's)."""

    image: str
    user_options: dict = field(default_factory=dict, compare=False, hash=False)


def machine_memory() -> int:
    """Bytes of memory this machine has."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_bound(settings: Settings, memory: int | None = None) -> int:
    """How many servers, in all, fit in memory next to the services and one build (at least 0)."""
    memory = machine_memory() if memory is None else memory
    spare = memory - RESERVE_BYTES - parse_size(settings.build_memory_limit, "build_memory_limit")
    return max(0, spare // parse_size(settings.memory_limit, "memory_limit"))


def wanted_per_image(settings: Settings, manifest: Manifest | None) -> int:
    """Servers per image that ``warm_pool_size`` asks for, before the memory and quota bounds."""
    if settings.auth_mode != "anonymous":
        return 0  # signed-in launches start their own named servers: a pool would sit unused
    if settings.warm_pool_size < 0:
        return manifest.attendees if manifest else 0
    return settings.warm_pool_size


def pool_size_for(settings: Settings, images: int = 1, memory: int | None = None) -> int:
    """Servers to keep ready per image, for ``images`` pooled images (see the module docstring)."""
    if settings.warm_pool_size == 0 or images < 1:
        return 0
    wanted = wanted_per_image(settings, load_manifest(settings) if settings.warm_pool_size < 0 else None)
    bound = memory_bound(settings, memory)
    if settings.total_quota:
        bound = min(bound, settings.total_quota)
    return max(0, min(wanted, bound // images))


def _options(entry_image: str, manifest: Manifest | None, settings: Settings) -> dict:
    """The user_options a launch of this image would carry (the prepared link's, when there is one)."""
    options: dict = {"image": entry_image, "binder_launch_host": settings.binder_launch_host}
    for entry in manifest.links if manifest else ():
        if here(settings, entry) == entry_image:
            resolved = entry.resolved()
            options.update(
                repo_url=resolved.repo_url,
                binder_ref_url=resolved.ref_url,
                binder_request=resolved.binder_request,
                binder_persistent_request=resolved.binder_persistent_request,
            )
            break
    return options


def here(settings: Settings, entry: PreparedLink) -> str:
    """The name a launch of this prepared link asks for on this machine (its registry and image_prefix)."""
    return image_for(settings, entry.resolved())


def _is_link(item: str) -> bool:
    path = item.lstrip("/").removeprefix("v2/")
    provider, sep, _ = path.partition("/")
    return bool(sep) and provider in PROVIDERS


def pool_images(settings: Settings) -> list[PoolImage]:
    """The images to keep warm, without repeats; links not in the manifest are skipped with a warning."""
    manifest = load_manifest(settings)
    items = [item.strip() for item in settings.warm_pool_images.split(",") if item.strip()]
    names: list[str] = []
    if not items:
        names = [here(settings, entry) for entry in manifest.links] if manifest else []
    for item in items:
        if not _is_link(item):
            names.append(item)
            continue
        provider, _, spec = item.lstrip("/").removeprefix("v2/").partition("/")
        entry = manifest.lookup(provider, spec) if manifest else None
        if entry is None:
            log.warning("warm pool: %s is not a prepared link of the workshop manifest; not pooled", item)
        else:
            names.append(here(settings, entry))
    return [PoolImage(name, _options(name, manifest, settings)) for name in dict.fromkeys(names)]


def image_id(settings: Settings, image: str) -> str | None:
    """The Docker id ``image`` names on this machine now, or None when it is not here."""
    try:
        return docker_client(settings, timeout=30).images.get(image).id
    except docker.errors.ImageNotFound:
        return None
