"""Idle culling: stop servers nobody uses, and servers past their maximum age.

Activity is the newest of the hub's ``last_activity`` and the server's own
``/api/status`` ``last_activity``; a kernel that is executing counts as
active even with no browser attached (the hub alone would call it idle).
Servers still starting are skipped. In anonymous mode the temporary user goes
with the server; users of authenticated mode only lose their server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import requests

from binderlite import hub
from binderlite.launcher import HubClient, HubError
from binderlite.settings import Settings

log = logging.getLogger("binderlite.culler")
TIMEOUT = (5.0, 20.0)


@dataclass
class CullDecision:
    user: str
    server: str
    reason: str
    delete_user: bool

    def describe(self) -> str:
        name = f"{self.user}/{self.server}" if self.server else self.user
        return f"{name} ({self.reason})"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class HubAdmin(HubClient):
    """The hub API calls the scheduler makes (the launcher's client, plus listing and stopping)."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.settings = settings

    def users(self) -> list[dict]:
        resp = self._call("GET", "/users", params={"include_stopped_servers": "false"})
        return self._check(resp, "Listing users").json()

    def _server_api(self, server: dict, path: str):
        base = hub.public_url(self.settings).rstrip("/") + server["url"]
        try:
            return self.session.get(f"{base}api/{path}", timeout=TIMEOUT).json()
        except (requests.RequestException, ValueError):
            return None

    def server_last_activity(self, server: dict) -> datetime | None:
        """The last activity the server itself reports (``/api/status`` does not count as activity)."""
        status = self._server_api(server, "status")
        return _parse_time(status.get("last_activity")) if isinstance(status, dict) else None

    def kernel_busy(self, server: dict) -> bool:
        """True if a kernel is executing. Asking counts as activity, so ask only before culling."""
        kernels = self._server_api(server, "kernels")
        return isinstance(kernels, list) and any(
            isinstance(k, dict) and k.get("execution_state") == "busy" for k in kernels
        )

    def stop_server(self, user: str, server: str) -> None:
        path = f"/users/{quote(user)}/servers/{quote(server)}" if server else f"/users/{quote(user)}/server"
        self._check(self._call("DELETE", path), f"Stopping the server of {user}")


def decide(settings: Settings, admin: HubAdmin, now: datetime | None = None) -> list[CullDecision]:
    """What should be culled right now (nothing is changed)."""
    now = now or datetime.now(UTC)
    decisions = []
    anonymous = settings.auth_mode == "anonymous"
    for user in admin.users():
        for name, server in (user.get("servers") or {}).items():
            if server.get("pending") or not server.get("ready"):
                continue
            started = _parse_time(server.get("started"))
            age = (now - started).total_seconds() if started else 0
            if settings.cull_max_age and age > settings.cull_max_age:
                decisions.append(
                    CullDecision(user["name"], name, f"age {age:.0f}s > {settings.cull_max_age}s", anonymous)
                )
                continue
            hub_activity = _parse_time(server.get("last_activity")) or started
            server_activity = admin.server_last_activity(server)
            latest = max(t for t in (hub_activity, server_activity, started) if t is not None)
            idle = (now - latest).total_seconds()
            if idle > settings.cull_idle_timeout and not admin.kernel_busy(server):
                decisions.append(
                    CullDecision(user["name"], name, f"idle {idle:.0f}s > {settings.cull_idle_timeout}s", anonymous)
                )
    return decisions


def cull(settings: Settings, dry_run: bool = False) -> list[CullDecision]:
    """Stop (and for temporary users, delete) what ``decide`` finds; log one line."""
    admin = HubAdmin(settings)
    decisions = decide(settings, admin)
    if not dry_run:
        for d in decisions:
            try:
                admin.stop_server(d.user, d.server)
                if d.delete_user:
                    admin.delete_user(d.user)
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
