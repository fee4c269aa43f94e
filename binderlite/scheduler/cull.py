"""Idle culling: stop servers nobody uses, and servers past their maximum age.

Activity is the newest of what the hub records for a server, what the proxy
records for its route, and — only for a server those call idle — what the
server itself reports: its own ``last_activity`` and whether a kernel is
executing (a busy kernel with no browser attached counts as active; the hub
alone would call it idle). Servers still starting are skipped. In anonymous
mode the temporary user goes with the server; users of authenticated mode
only lose their server (their persistent folders, Docker volumes, stay).

Warm pool servers (``launch/pool.py``) no launch has claimed are never culled:
they have no activity by design, and the pool job owns them. A claimed one is
culled like any other, its idle clock and age starting when it was claimed.

A user's server runs code the repository controls, so the question goes to
the server directly (not through the proxy, which would count it as
activity), with ``no_track_activity`` (so the server does not count it
either) and with a token minted for that one server and deleted right after:
never binderlite's own token. Asking therefore changes no idle clock, and a
dry run sees exactly what a real run would.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

from binderlite.errors import HubError
from binderlite.hub.api import HubClient, ProxyClient
from binderlite.launch import pool
from binderlite.settings import Settings

log = logging.getLogger("binderlite.scheduler.cull")
SERVER_TIMEOUT = (3.0, 5.0)  # a slow or hostile server must not stall the culler
PROBE_TOKEN_SECONDS = 120
PROBE_WORKERS = 8


@dataclass
class CullDecision:
    user: str
    server: str
    reason: str
    delete_user: bool

    def describe(self) -> str:
        name = f"{self.user}/{self.server}" if self.server else self.user
        return f"{name} ({self.reason})"


@dataclass
class ServerReport:
    """What a server says about itself."""

    last_activity: datetime | None
    busy: bool


def _parse_time(value: str | None) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def probe(client: HubClient, user: str, server: str, model: dict, routes: dict[str, dict]) -> ServerReport | None:
    """Ask the server itself (directly, not through the proxy) about its activity and kernels."""
    path = urlsplit(model.get("url") or "").path.rstrip("/")
    target = (routes.get(path) or {}).get("target")
    if not path or not target:
        return None
    base = f"{target.rstrip('/')}{path}/api/"
    note = "binderlite culler: asks one server about its own activity"
    try:
        with client.server_token(user, server, note=note, expires_in=PROBE_TOKEN_SECONDS) as token:
            session = requests.Session()
            session.trust_env = False  # straight to the container, never through a proxy
            session.headers["Authorization"] = f"token {token}"
            params = {"no_track_activity": "1"}
            status = session.get(base + "status", params=params, timeout=SERVER_TIMEOUT).json()
            kernels = session.get(base + "kernels", params=params, timeout=SERVER_TIMEOUT).json()
    except (HubError, requests.RequestException, ValueError) as exc:
        log.info("could not ask %s about its activity: %s", path, exc.__class__.__name__)
        return None
    activity = _parse_time(status.get("last_activity")) if isinstance(status, dict) else None
    busy = isinstance(kernels, list) and any(
        isinstance(kernel, dict) and kernel.get("execution_state") == "busy" for kernel in kernels
    )
    return ServerReport(activity, busy)


class Observer:
    """Where the culler's facts come from: the hub, the proxy, and (for idle ones) the servers themselves."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = HubClient(settings)
        self.proxy = ProxyClient(settings)

    def users(self) -> list[dict]:
        return self.client.users()

    def proxy_routes(self) -> dict[str, dict]:
        return self.proxy.routes()

    def pooled(self) -> dict[str, pool.Entry]:
        """The warm pool's servers, by user."""
        return {entry.user: entry for entry in pool.entries(self.settings)}

    def probe(self, user: str, server: str, model: dict, routes: dict[str, dict]) -> ServerReport | None:
        return probe(self.client, user, server, model, routes)


def decide(settings: Settings, observer: Observer, now: datetime | None = None) -> list[CullDecision]:
    """What should be culled right now (nothing is changed, no idle clock is reset).

    Servers the hub and the proxy call idle are asked about themselves at
    the same time (``PROBE_WORKERS``), each within ``SERVER_TIMEOUT``: a slow
    or silent server delays the run by seconds, not by its count.
    """
    now = now or datetime.now(UTC)
    decisions = []
    anonymous = settings.auth_mode == "anonymous"
    routes = observer.proxy_routes()
    pooled = observer.pooled()
    idle_candidates = []  # (user, server name, model, latest activity seen)
    for user in observer.users():
        entry = pooled.get(user["name"])
        if entry is not None and entry.state != pool.CLAIMED:
            continue  # an unclaimed pool server: the pool job's, not idle
        for name, server in (user.get("servers") or {}).items():
            if server.get("pending") or not server.get("ready"):
                continue
            started = _parse_time(server.get("started"))
            if entry is not None and entry.claimed:  # a pool server's life starts when a launch takes it
                started = datetime.fromtimestamp(entry.claimed, UTC)
            age = (now - started).total_seconds() if started else 0
            if settings.cull_max_age and age > settings.cull_max_age:
                decisions.append(
                    CullDecision(user["name"], name, f"age {age:.0f}s > {settings.cull_max_age}s", anonymous)
                )
                continue
            route = routes.get(urlsplit(server.get("url") or "").path.rstrip("/")) or {}
            seen = [_parse_time(server.get("last_activity")), _parse_time(route.get("last_activity")), started]
            latest = max((t for t in seen if t is not None), default=now)
            if (now - latest).total_seconds() > settings.cull_idle_timeout:
                idle_candidates.append((user["name"], name, server, latest))
    with ThreadPoolExecutor(PROBE_WORKERS) as workers:
        reports = workers.map(lambda c: observer.probe(c[0], c[1], c[2], routes), idle_candidates)
        for (user_name, name, _, latest), report in zip(idle_candidates, reports, strict=True):
            if report is not None:
                if report.busy:
                    continue
                if report.last_activity is not None:
                    latest = max(latest, report.last_activity)
            idle = (now - latest).total_seconds()
            if idle > settings.cull_idle_timeout:
                reason = f"idle {idle:.0f}s > {settings.cull_idle_timeout}s"
                decisions.append(CullDecision(user_name, name, reason, anonymous))
    return decisions


def cull(settings: Settings, dry_run: bool = False) -> list[CullDecision]:
    """Stop (and for temporary users, delete) what ``decide`` finds; log one line."""
    observer = Observer(settings)
    decisions = decide(settings, observer)
    if not dry_run:
        for d in decisions:
            try:
                observer.client.stop_server(d.user, d.server)
                if d.delete_user:
                    observer.client.delete_user(d.user)
            except HubError as exc:
                log.warning("could not cull %s: %s", d.describe(), exc.message)
    verb = "would cull" if dry_run else "culled"
    log.info(
        "%s %d servers%s",
        verb,
        len(decisions),
        (": " + ", ".join(d.describe() for d in decisions)) if decisions else "",
    )
    return decisions
