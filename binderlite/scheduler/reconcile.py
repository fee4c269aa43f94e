"""Reconciliation: make Docker, the hub and the proxy agree after crashes.

binderlite's containers (label ``binderlite.managed``, this install's
``binderlite.instance``) that the hub no longer knows are removed; hub servers
whose container is gone are stopped so the hub forgets them; proxy routes to
servers the hub does not know are dropped. Warm pool servers are ordinary hub
users' servers (the pool job records each before it creates the user, and
the hub knows the server before its container exists): their containers are
never orphans; a pooled server whose container died is cleared like any
other, and the pool job replaces it.
"""

from __future__ import annotations

import logging
import time

import docker.errors

from binderlite.dockerutil import docker_client
from binderlite.errors import HubError
from binderlite.hub.api import HubClient, ProxyClient
from binderlite.settings import Settings

log = logging.getLogger("binderlite.scheduler.reconcile")
GRACE_SECONDS = 120


def _managed_containers(settings: Settings) -> list:
    client = docker_client(settings)
    filters = {"label": ["binderlite.managed=1", f"binderlite.instance={settings.state_dir}"]}
    # ignore_removed: a container removed between the list and its inspect (a killed server's
    # auto-remove, another process's cull) is simply no longer there, not an error.
    return client.containers.list(all=True, filters=filters, ignore_removed=True)


def _created_age(container) -> float:
    created = container.attrs.get("Created", "")
    try:
        stamp = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        return GRACE_SECONDS + 1
    return time.time() - stamp


def reconcile(settings: Settings, grace: float = GRACE_SECONDS) -> dict[str, list[str]]:
    """Fix disagreements; return what was done, by kind, and log one line.

    Containers younger than ``grace`` seconds are left alone (a spawn may be under way).
    """
    client = HubClient(settings)
    users = client.users()
    known = {(u["name"], name) for u in users for name in (u.get("servers") or {})}
    ready = {(u["name"], name) for u in users for name, s in (u.get("servers") or {}).items() if s.get("ready")}
    done: dict[str, list[str]] = {"containers": [], "servers": [], "routes": []}

    containers = _managed_containers(settings)
    present = set()
    for c in containers:
        key = (c.labels.get("binderlite.user", ""), c.labels.get("binderlite.server", ""))
        if key in known and c.status == "running":
            present.add(key)
            continue
        if key in known or _created_age(c) < grace:
            continue
        try:
            c.remove(force=True)
            done["containers"].append(c.name)
        except docker.errors.NotFound:
            pass
    for user, server in sorted(ready - present):
        try:
            client.stop_server(user, server)
            done["servers"].append(f"{user}/{server}")
        except HubError as exc:
            log.warning("could not clear server %s/%s: %s", user, server, exc.message)
    done["routes"] = _drop_stale_routes(settings, {u for u, _ in known})
    log.info(
        "reconciled: removed %d orphan containers %s, cleared %d servers %s, dropped %d routes %s",
        len(done["containers"]),
        done["containers"],
        len(done["servers"]),
        done["servers"],
        len(done["routes"]),
        done["routes"],
    )
    return done


def _drop_stale_routes(settings: Settings, users: set[str]) -> list[str]:
    proxy = ProxyClient(settings)
    dropped = []
    for path in proxy.routes():
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "user" and parts[1] not in users and proxy.delete_route(path):
            dropped.append(path)
    return dropped
