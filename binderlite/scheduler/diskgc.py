"""Disk: remove least-recently-launched images above a high-water mark, prune, expire logs.

Only binderlite's images (tagged with the configured prefix) are removed,
never one a container uses or one queued or being built; least recently
launched first, until the disk is below the low-water mark.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import docker.errors

from binderlite.builds.queue import BuildQueue
from binderlite.builds.registry import BUILT_LABEL
from binderlite.dockerutil import docker_client, docker_root
from binderlite.settings import Settings

log = logging.getLogger("binderlite.scheduler.diskgc")
SERVICE_LOG_MAX_BYTES = 50 * 1024 * 1024
# Pruning the dangling layers many builds left behind can take the daemon minutes on a busy machine.
GC_DOCKER_TIMEOUT = 900


def disk_percent_used(path: str) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total


def is_ours(tag: str, settings: Settings) -> bool:
    """A tag binderlite gave a built image (prefix, maybe with the registry); base images are never ours."""
    name = tag.rsplit(":", 1)[0]
    if settings.registry and name.startswith(settings.registry + "/"):
        name = name[len(settings.registry) + 1 :]
    return bool(settings.image_prefix) and name.startswith(settings.image_prefix)


def containers_per_image(client) -> Counter[str]:
    """How many containers (running or not) use each image id, read from the engine's one listing."""
    return Counter(c["ImageID"] for c in client.api.containers(all=True) if c.get("ImageID"))


def images_in_use(client) -> set[str]:
    """Ids of the images any container (running or not) uses."""
    return set(containers_per_image(client))


def gc_images(settings: Settings, queue: BuildQueue | None = None) -> list[str]:
    """Remove binderlite images, least recently launched first, while the disk is above high water."""
    client = docker_client(settings, timeout=GC_DOCKER_TIMEOUT)
    root = docker_root(client)
    if disk_percent_used(root) <= settings.disk_high_water:
        return []
    queue = queue or BuildQueue(settings)
    in_use = images_in_use(client)
    building = queue.active_images()
    last_used = queue.image_last_used()
    candidates = []
    for image in client.images.list():
        built = BUILT_LABEL in ((image.attrs.get("Config") or {}).get("Labels") or {})  # not a base image
        tags = [t for t in image.tags if built and is_ours(t, settings)]
        if not tags or image.id in in_use or any(t in building for t in tags):
            continue
        used = max((last_used.get(t, 0.0) for t in tags), default=0.0)
        candidates.append((used, image.attrs.get("Created", ""), tags))
    removed = []
    for _, _, tags in sorted(candidates):
        if disk_percent_used(root) <= settings.disk_low_water:
            break
        for tag in tags:
            try:
                client.images.remove(tag)
                removed.append(tag)
            except docker.errors.APIError as exc:
                log.warning("could not remove %s: %s", tag, exc)
    client.images.prune(filters={"dangling": True})
    client.api.prune_builds(filters={"until": "24h"})  # BuildKit's cache (stock build packs): the old part
    return removed


def expire_logs(settings: Settings, now: float | None = None) -> list[Path]:
    """Delete build logs and build work directories older than the retention period."""
    cutoff = (now or time.time()) - settings.log_retention_days * 86400
    expired = []
    for folder in (settings.build_logs_dir, settings.build_work_dir / "generated"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                expired.append(path)
    return expired


def rotate_service_logs(settings: Settings, max_bytes: int = SERVICE_LOG_MAX_BYTES) -> list[Path]:
    """Keep each service's log under ``max_bytes``: the log goes to ``<name>.log.1`` and starts again.

    The services write to their log in append mode from a file descriptor
    ``binderlite up`` opened, so the log is copied and then truncated in place
    (what logrotate calls copytruncate); under systemd they log to the journal.
    """
    rotated = []
    for path in sorted(settings.logs_dir.glob("*.log")) if settings.logs_dir.is_dir() else []:
        if path.stat().st_size > max_bytes:
            shutil.copyfile(path, path.with_suffix(".log.1"))
            os.truncate(path, 0)
            rotated.append(path)
    return rotated


def collect(settings: Settings) -> dict[str, list]:
    """One garbage-collection run; logs one line."""
    removed = gc_images(settings)
    expired = expire_logs(settings)
    rotated = rotate_service_logs(settings)
    log.info(
        "disk gc: removed %d images %s, expired %d build logs/work dirs, rotated %d service logs",
        len(removed),
        removed,
        len(expired),
        len(rotated),
    )
    return {"images": removed, "logs": [str(p) for p in expired], "rotated": [str(p) for p in rotated]}
