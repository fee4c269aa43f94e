"""The prepared links as a table (link → commit → image, and whether the image is on this daemon).

``binderlite workshop prepare`` prints it at the end, ``binderlite workshop
list`` any time: what the handout's links open offline.
"""

from __future__ import annotations

from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.settings import Settings
from binderlite.workshop.manifest import Manifest, manifest_path


def present_images(settings: Settings, manifest: Manifest) -> dict[str, bool]:
    """Each prepared image → whether the Docker daemon has it."""
    client = docker_client(settings)
    return {entry.image: local_image_exists(client, entry.image) for entry in manifest.links}


def render(settings: Settings, manifest: Manifest | None, present: dict[str, bool]) -> str:
    """The table, with the manifest's place and its expected attendees; a hint when nothing is prepared."""
    if manifest is None or not manifest.links:
        return (
            f"No workshop is prepared here ({manifest_path(settings)} does not exist or lists no links).\n"
            "Prepare one while online: binderlite workshop prepare LINKS_FILE\n"
        )
    rows = [("LINK", "COMMIT", "IMAGE", "ON DAEMON")]
    for entry in manifest.links:
        on_daemon = "yes" if present.get(entry.image) else "MISSING (rebuilt from the bare copy)"
        if not entry.bare_copy and not present.get(entry.image):
            on_daemon = "MISSING"
        rows.append((entry.link, entry.resolved_ref[:12], entry.image, on_daemon))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]]) for row in rows]
    attendees = f"{manifest.attendees} expected attendees" if manifest.attendees else "attendees not given"
    footer = f"{len(manifest.links)} prepared links, {attendees} (manifest {manifest_path(settings)})"
    return "\n".join(line.rstrip() for line in lines) + "\n" + footer + "\n"
