"""Images built by binderlite's real pipeline, commands run inside them, and the build table on disk.

``build_link`` runs exactly what the CLI, the SSE API and the launcher run
(``resolve_link`` then ``build_events``), so a fixture image here is built by
the build queue, a detached build worker and repo2docker.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import docker
import docker.errors

from binderlite.builds.pipeline import build_events
from binderlite.links import resolve_link
from binderlite.settings import Settings
from tests.helpers.containers import TEST_PREFIX
from tests.helpers.gitserver import GitServer
from tests.helpers.streams import log_text


def build_link(settings: Settings, link: str) -> tuple[dict, list[dict]]:
    """Run the pipeline for a link; return (final event, all events)."""
    resolved = resolve_link(link, settings)
    events = [ev for ev in build_events(settings, resolved) if ev is not None]
    return events[-1], events


def build_fixture(settings: Settings, git_server: GitServer, fixture: str, name: str | None = None) -> tuple[str, str]:
    """Publish ``tests/fixtures/repos/<fixture>`` (as ``name``), build it; return (image, build log).

    Fails with the end of the build log if the build does not end with ``built``.
    """
    name = name or fixture
    git_server.add_fixture(fixture, name)
    final, events = build_link(settings, git_server.link(name))
    log = log_text(events)
    assert final["phase"] == "built", log[-3000:]
    return final["imageName"], log


def run_in_image(client: docker.DockerClient, image: str, command: str) -> str:
    """Run ``command`` in a login shell in a fresh bltest- container; return its output."""
    name = f"{TEST_PREFIX}check-{os.getpid()}-{time.monotonic_ns()}"
    try:
        out = client.containers.run(image, ["bash", "-lc", command], name=name, remove=False)
        return out.decode()
    finally:
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


# The build table (``builds`` in ``<state_dir>/binderlite.sqlite``), read the way an operator reads it;
# binderlite.builds.queue has no public query for these.
def builds_of_image(db_path: Path, image: str) -> int:
    """How many builds (any state) the build table holds for ``image``."""
    with sqlite3.connect(db_path) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM builds WHERE image = ?", (image,)).fetchone()
    return count


def active_build_pids(db_path: Path) -> list[int]:
    """Worker pids of builds that are queued or running."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT pid FROM builds WHERE state IN ('queued', 'running') AND pid IS NOT NULL")
        return [pid for (pid,) in rows]
