"""What a failed integration test shows besides its traceback: the logs of containers and services.

Stacks register their state dir while they run (``watching``); when a test
fails, ``failure_sections`` collects the logs of the containers it started
(named ``bltest-…``, or labelled with a running stack's ``binderlite.instance``)
and the end of every running stack's service logs (``<state_dir>/logs/*.log``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker.errors

from tests.helpers.containers import docker_or_none, ours

TAIL_LINES = 200
_running: list[str] = []  # state dirs of the stacks running now, oldest first


@contextmanager
def watching(state_dir: str | Path) -> Iterator[None]:
    """While the block runs, a failing test also shows this stack's containers and service logs."""
    _running.append(str(state_dir))
    try:
        yield
    finally:
        _running.remove(str(state_dir))


def container_ids() -> set[str] | None:
    """Ids of every container now (None without Docker): what a test finds before it starts."""
    client = docker_or_none()
    return None if client is None else {c.id for c in client.containers.list(all=True)}


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def failure_sections(before: set[str] | None) -> list[tuple[str, str]]:
    """(title, text) for each container started since ``before`` (all of them if None) and each service log."""
    sections = []
    client = docker_or_none()
    if client is not None:
        for container in client.containers.list(all=True):
            label = container.labels.get("binderlite.instance")
            if not (ours(container.name) or label in _running) or (before is not None and container.id in before):
                continue
            try:
                logs = container.logs(tail=TAIL_LINES).decode(errors="replace")
            except docker.errors.APIError as exc:  # removed meanwhile
                logs = f"(no logs: {exc})"
            image = container.image.tags[0] if container.image and container.image.tags else container.attrs["Image"]
            sections.append((f"container {container.name} ({container.status}, {image})", logs or "(empty)"))
    for state_dir in _running:
        for log in sorted(Path(state_dir, "logs").glob("*.log")):
            sections.append((f"service log {log}", _tail(log.read_text(errors="replace")) or "(empty)"))
    return sections
