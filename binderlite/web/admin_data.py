"""What the admin page shows: servers, builds, images, disk and the scheduler's runs, read where they live.

Servers come from the hub's API (user, repository, start, last activity) and
Docker (the server container's memory, by binderlite's labels); builds from
the build queue; images from Docker (binderlite-built ones: repo2docker's
label and the image prefix) with the queue's record of when each was last
launched; disk from Docker's data folder against the GC water marks; runs
from the scheduler's record. A source that does not answer leaves its part
empty and says so in ``problems``; the rest of the page still shows.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker.errors
import requests

from binderlite.builds.queue import Build, BuildQueue
from binderlite.dockerutil import docker_client, docker_root
from binderlite.errors import BinderliteError
from binderlite.hub.api import HubClient
from binderlite.scheduler import diskgc, runs
from binderlite.scheduler.runner import read_counts
from binderlite.settings import Settings

RECENT_BUILDS = 20
STATS_WORKERS = 4


@dataclass
class ServerRow:
    user: str
    server: str  # "" for the user's default server (anonymous mode)
    repository: str
    image: str
    started: datetime | None
    last_activity: datetime | None
    ready: bool
    memory: int | None = None  # bytes in use, from Docker; None when unknown


@dataclass
class ImageRow:
    id: str
    tags: list[str]
    size: int
    last_launched: float | None
    containers: int  # containers (running or not) that use it
    building: bool  # a queued or running build makes one of its tags
    build_id: str | None  # the newest build of it, for "rebuild"

    @property
    def in_use(self) -> bool:
        return self.containers > 0 or self.building


@dataclass
class Disk:
    path: str
    used: int
    total: int
    high_water: int
    low_water: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


@dataclass
class Overview:
    servers: list[ServerRow] = field(default_factory=list)
    queued: list[Build] = field(default_factory=list)
    running: list[Build] = field(default_factory=list)
    recent: list[Build] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    disk: Disk | None = None
    runs: list[runs.Run] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def hub_servers(settings: Settings) -> list[ServerRow]:
    """Every active server the hub knows (pending ones included), by user and server name."""
    rows = []
    for user in HubClient(settings).users(state="active"):
        for name, server in sorted((user.get("servers") or {}).items()):
            options = server.get("user_options") or {}
            rows.append(
                ServerRow(
                    user=user["name"],
                    server=name,
                    repository=options.get("repo_url") or options.get("image") or "",
                    image=options.get("image", ""),
                    started=_time(server.get("started")),
                    last_activity=_time(server.get("last_activity") or user.get("last_activity")),
                    ready=bool(server.get("ready")),
                )
            )
    return rows


# Where the kernel counts a container's memory when Docker's stats do not say (an engine whose stats come
# back empty, as Docker 20.10 on some hosts): cgroup v1 and v2, cgroupfs and systemd drivers.
CGROUP_MEMORY = (
    "/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes",
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.usage_in_bytes",
    "/sys/fs/cgroup/docker/{id}/memory.current",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.current",
)


def _cgroup_memory(container_id: str) -> int | None:
    for pattern in CGROUP_MEMORY:
        try:
            return int(Path(pattern.format(id=container_id)).read_text())
        except (OSError, ValueError):
            continue
    return None


def server_memory(settings: Settings, client) -> dict[tuple[str, str], int]:
    """Memory in use by each running server container of this install, keyed by (user, server)."""
    labels = ["binderlite.managed=1", f"binderlite.instance={settings.state_dir}"]
    containers = client.api.containers(filters={"label": labels, "status": "running"})

    def usage(container: dict) -> tuple[tuple[str, str], int | None]:
        key = (container["Labels"].get("binderlite.user", ""), container["Labels"].get("binderlite.server", ""))
        try:
            stats = client.api.stats(container["Id"], stream=False, one_shot=True)
            used = (stats.get("memory_stats") or {}).get("usage")
        except Exception:  # gone meanwhile, or an engine older than one_shot (API 1.41): the kernel's count
            used = None
        return key, used if used is not None else _cgroup_memory(container["Id"])

    with ThreadPoolExecutor(STATS_WORKERS) as pool:
        return {key: value for key, value in pool.map(usage, containers) if value is not None}


def built_images(settings: Settings, client, queue: BuildQueue) -> list[ImageRow]:
    """binderlite's images on the daemon, least recently launched first (the order disk GC removes them)."""
    using = diskgc.containers_per_image(client)
    building = queue.active_images()
    last_used = queue.image_last_used()
    rows = []
    for image in client.images.list():
        if diskgc.BUILT_LABEL not in ((image.attrs.get("Config") or {}).get("Labels") or {}):
            continue
        tags = sorted(t for t in image.tags if diskgc.is_ours(t, settings))
        if not tags:
            continue
        latest = max((b for t in tags if (b := queue.latest_build_of(t))), key=lambda b: b.created, default=None)
        rows.append(
            ImageRow(
                id=image.id,
                tags=tags,
                size=int(image.attrs.get("Size") or 0),
                last_launched=max((last_used[t] for t in tags if t in last_used), default=None),
                containers=using.get(image.id, 0),
                building=any(t in building for t in tags),
                build_id=latest.id if latest else None,
            )
        )
    return sorted(rows, key=lambda row: (row.last_launched or 0.0, row.tags))


def disk(settings: Settings, client) -> Disk:
    """Docker's data disk against the GC water marks."""
    root = docker_root(client)
    usage = shutil.disk_usage(root)
    return Disk(root, usage.used, usage.total, settings.disk_high_water, settings.disk_low_water)


def overview(settings: Settings) -> Overview:
    """Everything the admin page shows; each source that fails adds a line to ``problems``."""
    view = Overview()
    queue = BuildQueue(settings)
    view.queued = list(reversed(queue.builds(("queued",))))
    view.running = queue.builds(("running",))
    view.recent = queue.builds(("succeeded", "failed"), RECENT_BUILDS)
    view.runs = runs.recent_runs(settings)
    view.totals = read_counts(settings)
    try:
        view.servers = hub_servers(settings)
    except BinderliteError as exc:
        view.problems.append(f"Servers: {exc.message}")
    try:
        client = docker_client(settings)
    except BinderliteError as exc:
        view.problems.append(f"Images and memory: {exc.message}")
        return view
    try:
        memory = server_memory(settings, client)
        for row in view.servers:
            row.memory = memory.get((row.user, row.server))
        view.images = built_images(settings, client, queue)
        view.disk = disk(settings, client)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        view.problems.append(f"Images and memory: Docker did not answer ({exc.__class__.__name__}: {exc}).")
    finally:
        client.close()
    return view
