"""Every Prometheus metric binderlite exposes, and the one-line record functions the code calls.

BinderHub's metrics keep BinderHub's names, labels and buckets, so its
Grafana dashboards work unchanged: they are defined in jupyterhub/binderhub,
``binderhub/builder.py`` (``BUILD_BUCKETS = [60, 120, 300, 600, 1800, 3600,
7200, inf]``, ``LAUNCH_BUCKETS = [2, 5, 10, 20, 30, 60, 120, 300, 600, inf]``,
``BUILD_TIME``, ``LAUNCH_TIME``, ``BUILD_COUNT``, ``LAUNCH_COUNT``,
``BUILDS_INPROGRESS``, ``LAUNCHES_INPROGRESS``). As there, a launch that
succeeds is observed with ``retries`` = the retries it needed, a failed one
with ``retries="-1"``, a failed attempt that is retried with status ``retry``.
Where binderlite differs: ``binderhub_launch_count`` counts every launch
request's outcome — a refused one (quota, rate limit, a link that does not
resolve, a failed build) is ``failure`` — and a build is counted once, by the
build worker that ran it, however many people waited for it.

``repo`` labels follow ``metrics_repo_label`` (``repo_label``); the
``provider`` label is BinderHub's provider name (``GitHub``, ``GitLab``, …).
The ``binderlite_*`` metrics cover what BinderHub does not have: the build
queue, cache hits, and the scheduler's work.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import urllib.parse
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from binderlite.events import Event, Phase
from binderlite.observe import multiproc
from binderlite.observe.eventlog import PROVIDER_NAMES  # link prefix → BinderHub's name (the `provider` label)
from binderlite.settings import Settings

log = logging.getLogger("binderlite.metrics")
multiproc.ensure_dir()

INF = float("inf")
BUILD_BUCKETS = [60, 120, 300, 600, 1800, 3600, 7200, INF]
LAUNCH_BUCKETS = [2, 5, 10, 20, 30, 60, 120, 300, 600, INF]
QUEUE_WAIT_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, INF]

BUILD_TIME = Histogram("binderhub_build_time_seconds", "Histogram of build times", ["status"], buckets=BUILD_BUCKETS)
LAUNCH_TIME = Histogram(
    "binderhub_launch_time_seconds", "Histogram of launch times", ["status", "retries"], buckets=LAUNCH_BUCKETS
)
BUILD_COUNT = Counter("binderhub_build_count", "Counter of builds by repo", ["status", "provider", "repo"])
LAUNCH_COUNT = Counter("binderhub_launch_count", "Counter of launches by repo", ["status", "provider", "repo"])
BUILDS_INPROGRESS = Gauge("binderhub_inprogress_builds", "Builds currently in progress", multiprocess_mode="livesum")
LAUNCHES_INPROGRESS = Gauge(
    "binderhub_inprogress_launches", "Launches currently in progress", multiprocess_mode="livesum"
)

QUEUE_LENGTH = Gauge(
    "binderlite_build_queue_length", "Builds waiting for a free build slot", multiprocess_mode="mostrecent"
)
QUEUE_WAIT = Histogram(
    "binderlite_build_queue_wait_seconds", "Time builds waited in the queue", buckets=QUEUE_WAIT_BUCKETS
)
CACHE_HITS = Counter("binderlite_build_cache_hits", "Links whose image already existed: no build")
CULLED = Counter("binderlite_culled_servers", "Servers the scheduler stopped, by reason", ["reason"])
RECONCILE_FIXES = Counter("binderlite_reconcile_fixes", "What reconciliation repaired, by kind", ["kind"])
GC_REMOVED = Counter("binderlite_gc_removed_images", "Images removed by disk garbage collection")
DISK_USED = Gauge(
    "binderlite_disk_used_ratio", "Used fraction of Docker's data disk (0-1)", multiprocess_mode="mostrecent"
)
RUNNING_SERVERS = Gauge(
    "binderlite_running_servers", "Users' servers running, as the hub reports", multiprocess_mode="mostrecent"
)
POOL_SERVERS = Gauge(
    "binderlite_warm_pool_servers", "Warm pool servers, by state", ["state"], multiprocess_mode="mostrecent"
)

CULL_REASONS = {"idle": "idle", "age": "max_age"}  # the first word of a cull decision's reason → label
RECONCILE_KINDS = ("orphan_containers", "stale_servers", "dropped_routes", "dead_builds")
RETRY_MESSAGE = "Launch attempt "  # how the launcher announces a retry (launch/__init__.py)


def provider_label(prefix: str) -> str:
    """BinderHub's name for a link prefix; anything unknown is ``unknown`` (labels stay few)."""
    return PROVIDER_NAMES.get(prefix, "unknown" if prefix else "")


def repo_label(settings: Settings, repo_url: str, private: bool = False) -> str:
    """The ``repo`` label: the URL (without any user:password), its hash, or nothing."""
    if not repo_url or settings.metrics_repo_label == "omit":
        return ""
    parts = urllib.parse.urlsplit(repo_url)
    if parts.netloc and "@" in parts.netloc:
        repo_url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    if private or settings.metrics_repo_label == "hashed":
        return hashlib.sha256(repo_url.encode()).hexdigest()[:12]
    return repo_url


def _never_raises(method):
    """Counting never breaks what it counts (a request, a build, a scheduler job): a failure is logged."""

    @functools.wraps(method)
    def safe(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            log.warning("metrics: %s failed: %s: %s", method.__name__, exc.__class__.__name__, exc)
            return None

    return safe


@_never_raises
def record_build(settings: Settings, *, provider: str, repo: str, private: bool, status: str, seconds: float) -> None:
    """A build ended: ``status`` is ``success`` or ``failure`` (BinderHub's)."""
    BUILD_TIME.labels(status=status).observe(seconds)
    BUILD_COUNT.labels(status=status, provider=provider_label(provider), repo=repo_label(settings, repo, private)).inc()


@_never_raises
def record_launch(
    settings: Settings, *, provider: str, repo: str, private: bool, status: str, seconds: float | None, retries: int
) -> None:
    """A launch request ended; ``seconds`` is None when it never reached the launch (no time observed)."""
    if seconds is not None:
        LAUNCH_TIME.labels(status=status, retries=str(retries if status == "success" else -1)).observe(seconds)
    LAUNCH_COUNT.labels(
        status=status, provider=provider_label(provider), repo=repo_label(settings, repo, private)
    ).inc()


class LaunchWatch:
    """Follows one ``/build/`` request's events and records its outcome once.

    ``see`` every event the request sends; ``resolved`` once the link is known;
    ``close`` at the end whatever happened (a client gone mid-launch ends the
    in-progress count without counting a launch). A ``build_only`` request
    is not a launch: it counts nothing here.
    """

    def __init__(self, settings: Settings, provider: str, build_only: bool = False):
        self.settings, self.provider, self.build_only = settings, provider, build_only
        self.repo, self.private = "", False
        self.attempt_started: float | None = None
        self.retries = 0
        self.finished = False

    def resolved(self, repo_url: str, private: bool) -> None:
        self.repo, self.private = repo_url, private

    @_never_raises
    def see(self, ev: Event) -> None:
        if self.finished or self.build_only:
            return
        if ev.phase is Phase.LAUNCHING:
            if self.attempt_started is None:
                self.attempt_started = time.monotonic()
                LAUNCHES_INPROGRESS.inc()
            elif ev.message.startswith(RETRY_MESSAGE):
                LAUNCH_TIME.labels(status="retry", retries="-1").observe(time.monotonic() - self.attempt_started)
                self.retries += 1
                self.attempt_started = time.monotonic()
        elif ev.phase in (Phase.READY, Phase.FAILED):
            self.end("success" if ev.phase is Phase.READY else "failure")

    def end(self, status: str) -> None:
        """Record the outcome (once)."""
        if self.finished or self.build_only:
            return
        self.finished = True
        seconds = None
        if self.attempt_started is not None:
            seconds = time.monotonic() - self.attempt_started
            LAUNCHES_INPROGRESS.dec()
        record_launch(
            self.settings,
            provider=self.provider,
            repo=self.repo,
            private=self.private,
            status=status,
            seconds=seconds,
            retries=self.retries,
        )

    @_never_raises
    def close(self) -> None:
        if not self.finished and self.attempt_started is not None:
            LAUNCHES_INPROGRESS.dec()
        self.finished = True


@_never_raises
def record_cache_hit() -> None:
    CACHE_HITS.inc()


@_never_raises
def record_queue(length: int, waits: Iterable[float] = ()) -> None:
    """The number of queued builds now, and how long each build just started waited."""
    QUEUE_LENGTH.set(length)
    for seconds in waits:
        QUEUE_WAIT.observe(max(0.0, seconds))


@_never_raises
def record_culls(reasons: Iterable[str]) -> None:
    """Servers culled, given each decision's reason text (``idle 700s > 600s``, ``age …``)."""
    for reason in reasons:
        CULLED.labels(reason=CULL_REASONS.get(reason.split(" ", 1)[0], "other")).inc()


@_never_raises
def record_reconcile(fixes: dict[str, int]) -> None:
    """Reconciliation's repairs by kind (``RECONCILE_KINDS``)."""
    for kind, count in fixes.items():
        RECONCILE_FIXES.labels(kind=kind).inc(count)


@_never_raises
def record_gc(removed_images: int, disk_used_ratio: float | None) -> None:
    GC_REMOVED.inc(removed_images)
    if disk_used_ratio is not None:
        DISK_USED.set(disk_used_ratio)


@_never_raises
def record_servers(running: int) -> None:
    RUNNING_SERVERS.set(running)


@_never_raises
def record_pool(states: dict[str, int]) -> None:
    """Warm pool servers by state (starting, ready, claimed, draining)."""
    for state, count in states.items():
        POOL_SERVERS.labels(state=state).set(count)
