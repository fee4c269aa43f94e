"""What an admin may do from the admin page: stop a server, stop a build, rebuild a repository, delete an image.

Each action answers with a ``Done`` (the sentence the page flashes, and
whether it did what was asked); a server, build or image that does not exist
is ``UnknownTarget`` (404), a malformed id ``BadInputError`` (400). Deleting an
image is refused while a container uses it or a build makes it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import docker.errors

from binderlite.builds.queue import BuildQueue, QueueFull
from binderlite.dockerutil import docker_client
from binderlite.errors import BadInputError
from binderlite.hub.api import HubClient
from binderlite.scheduler import diskgc
from binderlite.settings import Settings
from binderlite.web import admin_data

IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
STOPPED_MESSAGE = "Build stopped by an administrator.\n"


class UnknownTarget(BadInputError):
    """The server, build or image named by an action does not exist (any more)."""

    status = 404


class Done(NamedTuple):
    message: str
    ok: bool = True


def _server_label(user: str, server: str) -> str:
    return f"{user}/{server}" if server else user


def stop_server(settings: Settings, user: str, server: str) -> Done:
    """Stop a running server through the hub; in anonymous mode its temporary user goes too (as culling does)."""
    if (user, server) not in {(row.user, row.server) for row in admin_data.hub_servers(settings)}:
        raise UnknownTarget(f"There is no running server {_server_label(user, server)!r} (it may have stopped).")
    client = HubClient(settings)
    client.stop_server(user, server)
    if settings.auth_mode == "anonymous":
        client.delete_user(user)
    return Done(f"Stopped the server {_server_label(user, server)}.")


def _build(queue: BuildQueue, build_id: str):
    build = queue.get(build_id)
    if build is None:
        raise UnknownTarget(f"There is no build {build_id!r}.")
    return build


def stop_build(settings: Settings, build_id: str) -> Done:
    """Stop a queued or running build: it ends failed and its worker stops repo2docker."""
    queue = BuildQueue(settings)
    build = _build(queue, build_id)
    if not queue.stop(build.id, STOPPED_MESSAGE):
        return Done(f"Build {build.id} of {build.repo_url} had already ended ({build.state}).", ok=False)
    return Done(f"Stopped build {build.id} of {build.repo_url}.")


def rebuild(settings: Settings, build_id: str) -> Done:
    """Queue a new build of the same resolved repository and ref; the new image replaces the tag."""
    queue = BuildQueue(settings)
    build = _build(queue, build_id)
    try:
        new, created = queue.request(
            build.image, build.repo_url, build.ref, build.content_provider, bool(build.private), build.provider
        )
    except QueueFull as exc:
        return Done(exc.message, ok=False)
    queue.dispatch()
    if not created:
        return Done(f"{build.repo_url} is already being built (build {new.id}).", ok=False)
    return Done(f"Rebuilding {build.repo_url} at {build.ref[:12]} (build {new.id}).")


def delete_image(settings: Settings, image_id: str) -> Done:
    """Remove every tag of one of binderlite's images, unless a container uses it or a build makes it."""
    if not IMAGE_ID.fullmatch(image_id):
        raise BadInputError(f"{image_id!r} is not an image id (sha256:<64 hex digits>).")
    client = docker_client(settings)
    try:
        try:
            image = client.images.get(image_id)
        except docker.errors.ImageNotFound:
            raise UnknownTarget(f"There is no image {image_id[:19]}.") from None
        labels = (image.attrs.get("Config") or {}).get("Labels") or {}
        tags = [t for t in image.tags if diskgc.BUILT_LABEL in labels and diskgc.is_ours(t, settings)]
        if not tags:
            raise UnknownTarget(f"Image {image_id[:19]} is not one binderlite built; it is left alone.")
        using = [c for c in client.api.containers(all=True) if c.get("ImageID") == image.id]
        if using:
            names = ", ".join(name.lstrip("/") for c in using for name in c.get("Names", [])[:1])
            return Done(f"Image {tags[0]} is in use by {len(using)} container(s) ({names}); stop them first.", False)
        if set(tags) & BuildQueue(settings).active_images():
            return Done(f"Image {tags[0]} is being built; stop the build first.", ok=False)
        for tag in tags:
            try:
                client.images.remove(tag)
            except docker.errors.APIError as exc:
                return Done(f"Docker did not remove {tag}: {exc.explanation or exc}", ok=False)
    finally:
        client.close()
    return Done(f"Deleted image {', '.join(tags)}.")
