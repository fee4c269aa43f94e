"""``binderlite status``: the operator's view of one install, for a terminal or (``--json``) a script.

Each service's state (its systemd unit when binderlite's units are installed,
else the ``binderlite up`` child from its pid file), the public URL, the
running servers (asked of the hub), the queued and running builds (the build
queue's database), Docker's disk against the GC water marks, and when
``public_url`` is https the certificate's expiry, read from the server itself
(verified if the system trusts it, read anyway if not). Whatever does not
answer is reported as such; ``Report.ok`` is False when something is down.
"""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from binderlite.dockerutil import docker_client, docker_root
from binderlite.errors import BinderliteError
from binderlite.hub import addresses
from binderlite.hub.api import HubClient
from binderlite.hub.auth import check_authenticator
from binderlite.hub.tokens import TOKEN_FILE
from binderlite.scheduler.diskgc import disk_percent_used
from binderlite.services import supervisor
from binderlite.services.table import Service, all_services
from binderlite.settings import Settings
from binderlite.workshop import classroom

CERT_WARN_DAYS = 14
TLS_TIMEOUT = 5.0
SHOW = ("LoadState", "ActiveState", "SubState", "MainPID", "NRestarts")


def _systemctl_show(units: list[str]) -> str:
    if not Path("/run/systemd/system").is_dir():
        return ""
    proc = subprocess.run(
        ["systemctl", "show", "--property=" + ",".join(SHOW), *units], capture_output=True, text=True, timeout=10
    )
    return proc.stdout


def unit_states(units: list[str], show: Callable[[list[str]], str] | None = None) -> dict[str, dict] | None:
    """Each unit's properties (``systemctl show``), or None when binderlite's units are not installed."""
    blocks = [b for b in (show or _systemctl_show)([*units, "binderlite.target"]).strip().split("\n\n") if b.strip()]
    parsed = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line) for block in blocks]
    if len(parsed) != len(units) + 1 or parsed[-1].get("LoadState") != "loaded":
        return None
    return dict(zip(units, parsed[:-1], strict=True))


def service_states(
    settings: Settings, services: list[Service], show: Callable[[list[str]], str] | None = None
) -> list[dict]:
    """One entry per service: name, state, ok, pid, and how it runs (systemd or up)."""
    units = [f"binderlite-{s.name}.service" for s in services]
    states = unit_states(units, show)
    rows = []
    for service, unit in zip(services, units, strict=True):
        if states is not None:
            props = states[unit]
            active = props.get("ActiveState", "unknown")
            rows.append(
                {
                    "name": service.name,
                    "via": unit,
                    "state": f"{active} ({props.get('SubState', '?')})",
                    "ok": active == "active",
                    "pid": int(props.get("MainPID") or 0) or None,
                    "restarts": int(props.get("NRestarts") or 0),
                }
            )
        else:
            pid = supervisor.running_pid(settings, service.name)
            state = "running" if pid else "not running"
            rows.append({"name": service.name, "via": "binderlite up", "state": state, "ok": bool(pid), "pid": pid})
    return rows


def running_servers(settings: Settings, client: HubClient | None = None) -> dict[str, Any]:
    """The hub's running servers, or the reason the hub could not say."""
    token_file = settings.hub_dir / TOKEN_FILE
    if client is None and not settings.hub_api_token and not token_file.exists():
        return {"ok": False, "error": f"no service token in {token_file} yet (binderlite prepare makes it)",
                "count": None, "servers": []}  # fmt: skip
    try:
        client = client or HubClient(settings)
        users = client.users(state="active")
    except (BinderliteError, OSError) as exc:
        return {"ok": False, "error": getattr(exc, "message", str(exc)), "count": None, "servers": []}
    servers = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            options = server.get("user_options") or {}
            servers.append(
                {
                    "user": user.get("name"),
                    "server": name,
                    "repo": options.get("repo_url", ""),
                    "ref": options.get("ref", ""),
                    "started": server.get("started"),
                    "last_activity": server.get("last_activity"),
                    "ready": bool(server.get("ready")),
                }
            )
    return {"ok": True, "error": None, "count": len(servers), "servers": servers}


def builds(settings: Settings) -> dict[str, Any]:
    """Queued and running builds, from the build queue's database (read-only)."""
    empty: dict[str, Any] = {"queued": 0, "running": 0, "active": [], "error": None}
    if not settings.db_path.exists():
        return empty
    try:
        db = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute(
                "SELECT id, image, repo_url, ref, state, created, started FROM builds "
                "WHERE state IN ('queued', 'running') ORDER BY created"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            return empty
        return {**empty, "error": f"could not read {settings.db_path}: {exc}"}
    keys = ("id", "image", "repo_url", "ref", "state", "created", "started")
    active = [dict(zip(keys, row, strict=True)) for row in rows]
    return {
        "queued": sum(b["state"] == "queued" for b in active),
        "running": sum(b["state"] == "running" for b in active),
        "active": active,
        "error": None,
    }


def disk(settings: Settings) -> dict[str, Any]:
    """Use of Docker's data disk (what image GC watches) against the water marks."""
    try:
        client = docker_client(settings, timeout=10)
        try:
            root = docker_root(client)
        finally:
            client.close()
        error = None
    except Exception as exc:  # Docker down: measure the state dir's disk instead, and say so
        root, error = settings.state_dir, f"Docker does not answer ({exc.__class__.__name__}); showing the state dir"
    try:
        used = round(disk_percent_used(root), 1)
    except OSError as exc:
        return {"path": root, "percent_used": None, "error": str(exc)}
    high, low = settings.disk_high_water, settings.disk_low_water
    return {
        "path": root,
        "percent_used": used,
        "high_water": high,
        "low_water": low,
        "above_high_water": used > high,
        "error": error,
    }


def _peer_certificate(host: str, port: int, verify: bool, timeout: float) -> bytes:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True) or b""


def certificate(url: str, timeout: float = TLS_TIMEOUT, now: float | None = None) -> dict[str, Any] | None:
    """The certificate ``url`` serves (None for http): expiry, days left, and whether this machine trusts it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 443
    info: dict[str, Any] = {"host": host, "port": port, "verified": False, "verify_error": None}
    try:
        try:
            der = _peer_certificate(host, port, True, timeout)
            info["verified"] = True
        except ssl.SSLCertVerificationError as exc:
            info["verify_error"] = exc.verify_message or str(exc)
            der = _peer_certificate(host, port, False, timeout)
    except (OSError, ssl.SSLError) as exc:
        return {**info, "ok": False, "error": f"no TLS answer from {host}:{port}: {exc}"}
    from cryptography import x509  # a dependency of JupyterHub's (certipy)

    cert = x509.load_der_x509_certificate(der)
    expires = cert.not_valid_after_utc
    days = (expires.timestamp() - (time.time() if now is None else now)) / 86400
    return {
        **info,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": expires.isoformat(),
        "days_left": int(days),
        "ok": days > 0,
        "error": None if days > 0 else "the certificate has expired",
    }


@dataclass
class Report:
    services: list[dict]
    public_url: str
    web_url: str
    servers: dict[str, Any]
    builds: dict[str, Any]
    disk: dict[str, Any]
    tls: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    classroom: dict[str, Any] | None = None  # the room `up --classroom` serves
    warnings: list[str] = field(default_factory=list)  # shown, but not "down" (the exit status stays 0)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "public_url": self.public_url,
            "web_url": self.web_url,
            "services": self.services,
            "servers": self.servers,
            "builds": self.builds,
            "disk": self.disk,
            "tls": self.tls,
            "classroom": self.classroom,
            "warnings": self.warnings,
        }


def collect(settings: Settings, show: Callable[[list[str]], str] | None = None) -> Report:
    """Everything ``binderlite status`` shows; never raises for a part that does not answer."""
    services = service_states(settings, all_services(settings, find=lambda name: name), show)
    public = addresses.public_url(settings)
    report = Report(
        services=services,
        public_url=public,
        web_url=settings.binder_launch_host,
        servers=running_servers(settings),
        builds=builds(settings),
        disk=disk(settings),
        tls=certificate(public),
    )
    report.problems += [f"{s['name']} is {s['state']}" for s in services if not s["ok"]]
    if not report.servers["ok"]:
        report.problems.append(f"the hub does not answer: {report.servers['error']}")
    if report.builds["error"]:
        report.problems.append(report.builds["error"])
    if report.disk.get("above_high_water"):
        report.problems.append(
            f"disk {report.disk['percent_used']}% used, above high water {settings.disk_high_water}%"
        )
    if report.tls and not report.tls["ok"]:
        report.problems.append(f"TLS: {report.tls['error']}")
    report.problems += sign_in_problems(settings)
    room = classroom.current_room(settings)
    if room is not None:
        report.classroom = dataclasses.asdict(room)
        report.web_url = room.url  # `up --classroom` moved the web app for its run
        report.warnings += [room.warning] if room.warning else []
    return report


def sign_in_problems(settings: Settings) -> list[str]:
    """Why nobody could sign in (authenticated mode): a setting, a secret, the directory or provider."""
    try:
        check_authenticator(settings)
    except BinderliteError as exc:
        return [f"sign-in ({settings.authenticator}): {exc.message}"]
    return []


def _ago(stamp: str | float | None, now: float) -> str:
    if stamp is None:
        return "-"
    if isinstance(stamp, str):
        try:
            stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return stamp
    seconds = max(0, int(now - stamp))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m ago"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s ago"
    )


def render(report: Report, now: float | None = None) -> str:
    """The report as text for a terminal."""
    now = time.time() if now is None else now
    lines = [f"binderlite: {'ok' if report.ok else 'PROBLEMS'}"]
    lines += [f"  ! {p}" for p in report.problems]
    lines += [f"  warning: {w}" for w in report.warnings]
    lines += ["", f"public URL  {report.public_url}", f"web app     {report.web_url}"]
    if report.classroom:
        room = report.classroom
        lines.append(
            f"classroom   {room['url']} ({room['attendees']} attendees, {room['pool']} warm; "
            f"total_quota {room['total_quota'] or 'unlimited'})"
        )
    if report.tls:
        tls = report.tls
        if tls.get("not_after"):
            trust = "verified" if tls["verified"] else f"NOT verified: {tls['verify_error']}"
            lines.append(f"certificate expires {tls['not_after']} ({tls['days_left']} days left; {trust})")
            if 0 < tls["days_left"] < CERT_WARN_DAYS:
                lines.append(f"  ! renew it: fewer than {CERT_WARN_DAYS} days left")
        else:
            lines.append(f"certificate: {tls['error']}")
    lines += ["", "services"]
    for s in report.services:
        pid = f"pid {s['pid']}" if s["pid"] else ""
        restarts = f"restarted {s['restarts']}x" if s.get("restarts") else ""
        lines.append(f"  {s['name']:<10} {s['state']:<22} {pid:<11} {restarts:<14} {s['via']}".rstrip())
    servers = report.servers
    lines += [""]
    if servers["ok"]:
        lines.append(f"servers     {servers['count']} running")
        for s in servers["servers"]:
            name = s["user"] + (f"/{s['server']}" if s["server"] else "")
            state = "active " + _ago(s["last_activity"], now) if s["ready"] else "starting"
            lines.append(f"  {name:<28} {state:<18} {s['repo']} {s['ref']}".rstrip())
    else:
        lines.append(f"servers     unknown: {servers['error']}")
    b = report.builds
    lines.append(
        f"builds      {b['running']} running, {b['queued']} queued" + (f" ({b['error']})" if b["error"] else "")
    )
    for build in b["active"]:
        since = _ago(build["started"] if build["state"] == "running" else build["created"], now)
        lines.append(f"  {build['state']:<8} {since:<12} {build['repo_url']} {build['ref']}")
    d = report.disk
    if d.get("percent_used") is None:
        lines.append(f"disk        unknown: {d['error']}")
    else:
        marks = f"GC above {d['high_water']}%, down to {d['low_water']}%"
        lines.append(f"disk        {d['percent_used']}% used of {d['path']} ({marks})")
        if d["error"]:
            lines.append(f"  ({d['error']})")
    return "\n".join(lines) + "\n"
