"""Disk GC (runs last: it prunes Docker's build cache, which would slow later builds)."""

from __future__ import annotations

import dataclasses
import io
import time

import docker.errors
import pytest

from binderlite.builds.queue import BuildQueue
from binderlite.scheduler import diskgc

pytestmark = pytest.mark.integration


def _tiny_image(client, base: str, tag: str) -> str:
    dockerfile = f"FROM {base}\nLABEL binderlite.test={tag}\n".encode()
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    return image.id


def test_gc_removes_least_recently_launched_first_and_keeps_image_in_use(settings, docker_client):
    gc_settings = dataclasses.replace(
        settings, image_prefix="bltest-gc-", registry="", disk_high_water=1, disk_low_water=0
    )
    for name in ("old", "new", "inuse"):
        _tiny_image(docker_client, settings.base_image, f"bltest-gc-{name}:1")
    queue = BuildQueue(gc_settings)
    queue.touch_image("bltest-gc-old:1")
    time.sleep(0.05)
    queue.touch_image("bltest-gc-new:1")
    container = docker_client.containers.create("bltest-gc-inuse:1", ["true"], name="bltest-gc-user")
    try:
        removed = diskgc.gc_images(gc_settings, queue)
        assert removed.index("bltest-gc-old:1") < removed.index("bltest-gc-new:1")
        assert "bltest-gc-inuse:1" not in removed
        docker_client.images.get("bltest-gc-inuse:1")
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get("bltest-gc-old:1")
    finally:
        container.remove(force=True)


def test_expire_logs_removes_only_old_files(settings, tmp_path):
    s = dataclasses.replace(settings, state_dir=str(tmp_path), log_retention_days=1)
    s.ensure_dirs()
    old, new = s.build_logs_dir / "old.jsonl", s.build_logs_dir / "new.jsonl"
    old.write_text("{}\n")
    new.write_text("{}\n")
    past = time.time() - 3 * 86400
    import os

    os.utime(old, (past, past))
    expired = diskgc.expire_logs(s)
    assert old in expired and not old.exists() and new.exists()
