"""The build pipeline in one call: resolved link → image, as a stream of events.

This is what the CLI, the SSE API and the launcher read. If the image for
(repo, commit) exists — on the daemon or in the registry — it is reused;
otherwise the build queue runs (or attaches to) the one build for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker.errors

from binderlite.builds.queue import BuildQueue
from binderlite.builds.registry import registry_has_image
from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BaseImageMissingError, BinderliteError
from binderlite.events import Event, Phase
from binderlite.links import ResolvedRepo
from binderlite.links.imagenames import image_name_key
from binderlite.observe import metrics
from binderlite.settings import Settings


def image_for(settings: Settings, resolved: ResolvedRepo) -> str:
    """The image name for a resolved repo, including the registry host when one is set."""
    prefix = f"{settings.registry}/{settings.image_prefix}" if settings.registry else settings.image_prefix
    return resolved.image(prefix, image_name_key(settings.hub_dir) if resolved.private else b"")


def image_available(settings: Settings, image: str) -> bool:
    """True if the daemon has ``image``, pulling it from binderlite's registry if only it has it."""
    client = docker_client(settings)
    if local_image_exists(client, image):
        return True
    if settings.registry and registry_has_image(settings.registry, image):
        repository, _, tag = image.rpartition(":")
        try:
            client.images.pull(repository, tag=tag)
        except docker.errors.DockerException:
            return False
        return True
    return False


def build_events(settings: Settings, resolved: ResolvedRepo, queue: BuildQueue | None = None) -> Iterator[Event | None]:
    """Events of getting the image for ``resolved``; ends with ``built`` or ``failed``.

    ``None`` items mean "nothing new for a while" (the SSE layer sends a keepalive).
    """
    for note in resolved.notes:
        yield Event.waiting(note)
    image = image_for(settings, resolved)
    try:
        if image_available(settings, image):
            (queue or BuildQueue(settings)).touch_image(image)
            metrics.record_cache_hit()
            yield Event.built(image, "Found built image, launching...")
            return
        if settings.build_packs == "binderlite" and not local_image_exists(
            docker_client(settings), settings.base_image
        ):
            raise BaseImageMissingError(
                f"Base image {settings.base_image} not found on the Docker daemon — "
                "run `binderlite base-image` to make it."
            )
        queue = queue or BuildQueue(settings)
        ref = resolved.resolved_ref if resolved.content_provider == "git" else ""
        build, _ = queue.request(
            image,
            resolved.repo_url,
            ref,
            resolved.content_provider,
            private=resolved.private,
            provider=resolved.provider,
        )
        queue.dispatch()
    except BinderliteError as exc:
        yield Event.failed(exc.message, exc.status)
        return
    for ev in queue.follow(build.id):
        if ev is not None and ev.phase is Phase.BUILT:
            queue.touch_image(image)
        yield ev
