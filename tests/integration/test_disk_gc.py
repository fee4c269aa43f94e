"""Disk GC on a real Docker engine: binderlite's images go least recently launched first, never one in use.

The test has its own settings and images (``bltest-gc-``), so it may run in
any order. It records the GC's final build-cache prune instead of running it:
that prune empties the daemon's whole BuildKit cache, which every other build
on this machine (other tests, benchmarks, users) shares.
"""

from __future__ import annotations

import io
import time

import docker.errors
import pytest

from binderlite.builds.queue import BuildQueue
from binderlite.scheduler import diskgc
from binderlite.settings import Settings

pytestmark = pytest.mark.integration


def _tiny_image(client, base: str, tag: str, built: bool = True) -> str:
    """A tiny image; ``built`` gives it the label of images binderlite built (the GC takes no other)."""
    label = f"{diskgc.BUILT_LABEL}=test" if built else "binderlite.test=base"
    dockerfile = f"FROM {base}\nLABEL binderlite.test={tag} {label}\n".encode()
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    return image.id


@pytest.fixture
def build_cache_prunes(monkeypatch) -> list[dict]:
    """The GC's Docker client, with ``prune_builds`` recorded (its keyword arguments) rather than run."""
    prunes: list[dict] = []
    real_client = diskgc.docker_client

    def client_that_keeps_the_build_cache(settings, *args, **kwargs):
        client = real_client(settings, *args, **kwargs)
        monkeypatch.setattr(client.api, "prune_builds", lambda **options: prunes.append(options) or {})
        return client

    monkeypatch.setattr(diskgc, "docker_client", client_that_keeps_the_build_cache)
    return prunes


def test_gc_removes_least_recently_launched_first_and_keeps_image_in_use(docker_client, tmp_path, build_cache_prunes):
    gc_settings = Settings(
        state_dir=str(tmp_path), image_prefix="bltest-gc-", registry="", disk_high_water=1, disk_low_water=0
    )
    for name in ("old", "new", "inuse"):
        _tiny_image(docker_client, gc_settings.base_image, f"bltest-gc-{name}:1")
    _tiny_image(docker_client, gc_settings.base_image, "bltest-gc-base:1", built=False)
    queue = BuildQueue(gc_settings)
    queue.touch_image("bltest-gc-old:1")
    time.sleep(0.05)
    queue.touch_image("bltest-gc-new:1")
    container = docker_client.containers.create("bltest-gc-inuse:1", ["true"], name="bltest-gc-user")
    try:
        removed = diskgc.gc_images(gc_settings, queue)
        assert removed.index("bltest-gc-old:1") < removed.index("bltest-gc-new:1")
        assert "bltest-gc-inuse:1" not in removed
        assert "bltest-gc-base:1" not in removed, "an image binderlite did not build (a base image) is never taken"
        docker_client.images.get("bltest-gc-base:1")
        docker_client.images.get("bltest-gc-inuse:1")
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get("bltest-gc-old:1")
        assert build_cache_prunes, "the GC prunes the build cache after removing images"
    finally:
        container.remove(force=True)
