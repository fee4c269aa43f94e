"""The warm pool job: keep N ready servers of each pooled image, replace claimed ones, drain stale ones.

Every ``POOL_EVERY`` seconds the scheduler compares the pool's table
(``launch/pool.py``) with the hub's users and what ``workshop/warmpool.py``
wants, then acts on the plan (``plan`` decides, nothing else does):

- a starting server the hub reports ready becomes ``ready`` (claimable);
- one that failed to start, or is still starting after ``launch_timeout``, is
  drained, and that image's next start waits (backoff up to ``MAX_BACKOFF``);
- an unclaimed server whose image is no longer wanted, or whose image name
  now points to another image id (a rebuild), or beyond N, is drained: its
  server stopped and its user deleted;
- a claimed server is the launch's: left alone, and forgotten once the
  culler has deleted its user;
- missing servers are started (at most ``START_BATCH`` per run), each holding
  a quota slot while it starts, so the pool never exceeds ``total_quota`` —
  but not while launches are spawning servers of their own: in a classroom
  burst the pool hands out what it has, and its replacements wait until the
  people who got no pooled server have theirs (they would compete for the CPU).

Pool users are created with the same ``user_options`` a launch of the image
would carry (the workshop manifest's, when it prepared the image).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from binderlite.errors import HubError
from binderlite.hub.api import HubClient
from binderlite.launch import pool, quotas
from binderlite.launch.names import pool_username
from binderlite.settings import Settings
from binderlite.workshop.warmpool import PoolImage, image_id, pool_images, pool_size_for

log = logging.getLogger("binderlite.scheduler.pool")
POOL_EVERY = 2
START_BATCH = 4
WORKERS = 4
CREATE_GRACE = 30.0  # a row may exist this long before its hub user does (the job is creating it)
MAX_BACKOFF = 300.0


@dataclass
class Plan:
    """What one run of the pool job does."""

    ready: list[str] = field(default_factory=list)  # starting → ready
    drain: list[str] = field(default_factory=list)  # stop and delete (unclaimed only)
    forget: list[str] = field(default_factory=list)  # rows whose user is gone
    failed: list[str] = field(default_factory=list)  # images whose server failed to start (subset of drain's)
    start: dict[str, int] = field(default_factory=dict)  # image → servers to start


def _server(user: dict | None) -> dict | None:
    return ((user or {}).get("servers") or {}).get("")


def plan(
    entries: list[pool.Entry],
    hub_users: dict[str, dict],
    wanted: dict[str, tuple[int, str | None]],
    now: float,
    launch_timeout: float,
) -> Plan:
    """Decide (without acting) from the pool's rows, the hub's users and ``wanted``: image → (N, image id)."""
    out = Plan()
    pooled = {e.user for e in entries}
    spawning = any(
        server.get("pending") == "spawn"
        for name, user in hub_users.items()
        if name not in pooled
        for server in (user.get("servers") or {}).values()
    )
    live: dict[str, list[pool.Entry]] = {}
    for entry in entries:
        user = hub_users.get(entry.user)
        age = now - entry.created
        if entry.state == pool.CLAIMED:
            if user is None:
                out.forget.append(entry.user)
            continue
        if entry.state == pool.DRAINING:
            out.drain.append(entry.user)  # a drain that did not finish
            continue
        if user is None:
            if age > CREATE_GRACE:
                out.forget.append(entry.user)
            continue
        count, current = wanted.get(entry.image, (0, None))
        if count == 0 or entry.image_id != current:
            out.drain.append(entry.user)  # not wanted any more, or its image was rebuilt
            continue
        server = _server(user)
        ready = bool(server and server.get("ready") and not server.get("pending"))
        if entry.state == pool.STARTING and ready:
            out.ready.append(entry.user)
        elif entry.state == pool.STARTING and (age > launch_timeout or (not server and age > CREATE_GRACE)):
            out.drain.append(entry.user)
            out.failed.append(entry.image)
            continue
        elif entry.state == pool.READY and not ready:
            out.drain.append(entry.user)  # died or was stopped
            continue
        live.setdefault(entry.image, []).append(entry)
    for image, (count, current) in wanted.items():
        have = live.get(image, [])
        # keep ready ones first, the oldest first
        have.sort(key=lambda e: (e.state != pool.READY and e.user not in out.ready, e.created))
        out.drain.extend(e.user for e in have[count:])
        if current and len(have) < count and not spawning:
            out.start[image] = count - len(have)
    return out


class PoolKeeper:
    """Runs the pool job; remembers, between runs, which images failed to start (for the backoff)."""

    def __init__(self, settings: Settings, client: HubClient | None = None):
        self.settings = settings
        self.client = client or HubClient(settings)
        self.backoff: dict[str, tuple[int, float]] = {}  # image → (failures in a row, no start before)

    def wanted(self) -> tuple[dict[str, tuple[int, str | None]], dict[str, PoolImage]]:
        """image → (N, its image id now), and image → what to start it with."""
        if self.settings.warm_pool_size == 0:
            return {}, {}
        images = pool_images(self.settings)
        size = pool_size_for(self.settings, len(images))
        if size == 0:
            return {}, {}
        return {i.image: (size, image_id(self.settings, i.image)) for i in images}, {i.image: i for i in images}

    def run(self) -> dict[str, int]:
        """One pass; what it did, by kind."""
        wanted, images = self.wanted()
        entries = pool.entries(self.settings)
        if not wanted and not entries:
            return {}
        users = {u["name"]: u for u in self.client.users()}
        todo = plan(entries, users, wanted, time.time(), self.settings.launch_timeout)
        for user in todo.ready:
            pool.mark_ready(self.settings, user)
        for user in todo.forget:
            pool.forget(self.settings, user)
        for image in todo.failed:
            failures = self.backoff.get(image, (0, 0.0))[0] + 1
            self.backoff[image] = (failures, time.time() + min(MAX_BACKOFF, 5.0 * 2**failures))
            log.warning("warm pool: a server of %s failed to start (%d in a row)", image, failures)
        for entry in entries:
            if entry.user in todo.ready:
                self.backoff.pop(entry.image, None)
        starts = [images[image] for image, count in todo.start.items() if self._may_start(image) for _ in range(count)]
        with ThreadPoolExecutor(WORKERS) as workers:
            drained = sum(workers.map(self._drain, todo.drain))
            started = sum(workers.map(self._start, starts[:START_BATCH]))
        done = {"pool_ready": len(todo.ready), "pool_drained": drained, "pool_started": started}
        if any(done.values()):
            log.info("warm pool: %s", ", ".join(f"{k.removeprefix('pool_')} {v}" for k, v in done.items() if v))
        return done

    def _may_start(self, image: str) -> bool:
        return time.time() >= self.backoff.get(image, (0, 0.0))[1]

    def _drain(self, user: str) -> int:
        if not pool.take_for_draining(self.settings, user):
            return 0  # a launch claimed it meanwhile: it is theirs
        self.client.delete_user(user)
        pool.forget(self.settings, user)
        return 1

    def _start(self, image: PoolImage) -> int:
        current = image_id(self.settings, image.image)
        if current is None:
            return 0
        source = image.user_options.get("repo_url") or image.image
        name = pool_username(source)
        pool.add(self.settings, name, image.image, current)
        try:
            with quotas.slot(self.settings, self.client, source, pooled=True):
                self.client.create_user(name)
                self.client.start_server(name, {**image.user_options, "warm_pool": name})
        except quotas.QuotaExceeded:
            log.info("warm pool: total_quota reached; not starting another server of %s", image.image)
            pool.forget(self.settings, name)
            return 0
        except HubError as exc:
            log.warning("warm pool: could not start a server of %s: %s", image.image, exc.message)
            failures = self.backoff.get(image.image, (0, 0.0))[0] + 1
            self.backoff[image.image] = (failures, time.time() + min(MAX_BACKOFF, 5.0 * 2**failures))
            self.client.delete_user(name)
            pool.forget(self.settings, name)
            return 0
        return 1
