"""The one scheduler process: culling, reconciliation, disk, the warm pool, on an APScheduler clock.

What each job did is added to running totals in SQLite (``add_counts``) and
to the Prometheus metrics (``observe/metrics.py``): cull reasons,
reconciliation fixes, images removed, disk use, running servers, pool sizes.

Exactly one runs per install: it holds an exclusive ``flock`` on
``<state>/run/scheduler.lock`` for its whole life. A second one started by
mistake logs who holds the lock and exits without running any job (gunicorn
workers never start jobs: the web app only reads what they recorded). Each
run is recorded (``runs.py``: when, how long, what it counted) for the admin page.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import IO, TypeVar

from apscheduler.schedulers.blocking import BlockingScheduler

from binderlite.builds.queue import BuildQueue
from binderlite.dockerutil import docker_client, docker_root
from binderlite.errors import SchedulerLocked
from binderlite.hub.api import HubClient
from binderlite.launch import pool as launch_pool
from binderlite.observe import metrics
from binderlite.scheduler import cull, diskgc, pool, reconcile, runs
from binderlite.settings import Settings

log = logging.getLogger("binderlite.scheduler")
T = TypeVar("T")
# Reconciliation's fixes: the metric's `kind` label → the running total's name (kept as earlier releases wrote it).
RECONCILE_TOTALS = {
    "orphan_containers": "removed_orphan_containers",
    "stale_servers": "cleared_servers",
    "dropped_routes": "dropped_routes",
    "dead_builds": "failed_dead_builds",
}


def lock_path(settings: Settings):
    return settings.run_dir / "scheduler.lock"


@contextmanager
def scheduler_lock(settings: Settings):
    """Hold the scheduler lock, or raise SchedulerLocked naming the holder."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    fh: IO[str] = open(lock_path(settings), "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise SchedulerLocked(
            f"another binderlite scheduler (pid {holder}) holds {lock_path(settings)}; not running jobs"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def lock_held(settings: Settings) -> bool:
    """True if some process holds the scheduler lock right now."""
    path = lock_path(settings)
    if not path.exists():
        return False
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def add_counts(settings: Settings, counts: dict[str, int]) -> None:
    """Add to the running totals of what the jobs did (read by /metrics and the admin view)."""
    with sqlite3.connect(settings.db_path, timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS scheduler_counts (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        for name, value in counts.items():
            db.execute(
                "INSERT INTO scheduler_counts (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, value),
            )


def read_counts(settings: Settings) -> dict[str, int]:
    """The running totals recorded by ``add_counts``."""
    try:
        with sqlite3.connect(settings.db_path, timeout=30) as db:
            return dict(db.execute("SELECT name, value FROM scheduler_counts").fetchall())
    except sqlite3.OperationalError:
        return {}


def running_servers(settings: Settings) -> int:
    """Servers the hub reports ready (warm pool servers included)."""
    users = HubClient(settings).users(state="active")
    return sum(1 for user in users for server in (user.get("servers") or {}).values() if server.get("ready"))


def disk_used_ratio(settings: Settings) -> float:
    """Used fraction of the disk holding Docker's data (what image GC's water marks are about)."""
    client = docker_client(settings)
    try:
        return diskgc.disk_percent_used(docker_root(client)) / 100
    finally:
        client.close()


def pool_states(settings: Settings) -> dict[str, int]:
    """Warm pool servers by state (every state named, 0 included)."""
    states = dict.fromkeys((launch_pool.STARTING, launch_pool.READY, launch_pool.CLAIMED, launch_pool.DRAINING), 0)
    for entry in launch_pool.entries(settings):
        states[entry.state] = states.get(entry.state, 0) + 1
    return states


def _gauge_reading(read: Callable[[Settings], T], settings: Settings) -> T | None:
    """A gauge's value, or None when it cannot be read now (what the job did still counts)."""
    try:
        return read(settings)
    except Exception as exc:
        log.warning("metrics: %s failed: %s: %s", read.__name__, exc.__class__.__name__, exc)
        return None


def _cull_job(settings: Settings) -> dict[str, int]:
    culled = cull.cull(settings)
    metrics.record_culls(d.reason for d in culled)
    running = _gauge_reading(running_servers, settings)
    if running is not None:
        metrics.record_servers(running)
    return {"culled_servers": len(culled)}


def _reconcile_job(settings: Settings, queue: BuildQueue) -> dict[str, int]:
    done = reconcile.reconcile(settings)
    reaped = queue.reap()
    fixes = {
        "orphan_containers": len(done["containers"]),
        "stale_servers": len(done["servers"]),
        "dropped_routes": len(done["routes"]),
        "dead_builds": len(reaped),
    }
    metrics.record_reconcile(fixes)
    return {RECONCILE_TOTALS[kind]: count for kind, count in fixes.items()}


def _gc_job(settings: Settings) -> dict[str, int]:
    done = diskgc.collect(settings)
    metrics.record_gc(len(done["images"]), _gauge_reading(disk_used_ratio, settings))
    return {"removed_images": len(done["images"]), "expired_logs": len(done["logs"])}


def _pool_loop(settings: Settings, keeper: pool.PoolKeeper, stop: threading.Event) -> None:
    """The warm pool job, on a thread of its own: every POOL_EVERY s after the last run ended (a run that
    waits on slow spawns delays the next, never overlaps it); after failures, up to a minute apart."""
    pause = pool.POOL_EVERY
    while not stop.wait(pause):
        try:
            done = keeper.run()
            if any(done.values()):
                add_counts(settings, done)
            metrics.record_pool(pool_states(settings))
            pause = pool.POOL_EVERY
        except Exception as exc:  # one failed run must not stop the pool
            log.warning("warm-pool failed: %s: %s", exc.__class__.__name__, exc)
            pause = min(60.0, pause * 2)


def _safely(settings: Settings, name: str, job: Callable[[], dict[str, int]]):
    """``job`` as the clock runs it: what it returns is added to the running totals; a failure is logged,
    not raised; every run is recorded with what it did."""

    def run():
        started, clock = time.time(), time.monotonic()
        try:
            counts = job()
            add_counts(settings, counts)
            result = runs.summary(counts)
        except Exception as exc:  # one failed run must not stop the clock
            log.warning("%s failed: %s: %s", name, exc.__class__.__name__, exc)
            result = f"failed: {exc.__class__.__name__}: {exc}"[:300]
        try:
            runs.record_run(settings, name, started, time.monotonic() - clock, result)
        except sqlite3.Error as exc:
            log.warning("could not record the %s run: %s", name, exc)

    return run


def run(settings: Settings) -> None:
    """Hold the lock and run the jobs until stopped (SIGTERM/SIGINT)."""
    with scheduler_lock(settings):
        queue = BuildQueue(settings)
        jobs = {
            "cull": (lambda: _cull_job(settings), settings.cull_every),
            "reconcile": (lambda: _reconcile_job(settings, queue), settings.reconcile_every),
            "disk-gc": (lambda: _gc_job(settings), settings.gc_every),
        }
        _safely(settings, "reconcile", jobs["reconcile"][0])()
        scheduler = BlockingScheduler()
        for name, (job, every) in jobs.items():
            scheduler.add_job(
                _safely(settings, name, job), "interval", seconds=every, id=name, max_instances=1, coalesce=True
            )
        stop = threading.Event()
        keeper = threading.Thread(
            target=_pool_loop, args=(settings, pool.PoolKeeper(settings), stop), name="warm-pool", daemon=True
        )
        keeper.start()
        log.info(
            "scheduler running: cull every %ss, reconcile every %ss, disk gc every %ss, warm pool every %ss",
            settings.cull_every,
            settings.reconcile_every,
            settings.gc_every,
            pool.POOL_EVERY,
        )
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            stop.set()
