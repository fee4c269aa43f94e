"""Reconciliation: make the servers' backend, the hub and the proxy agree after crashes.

binderlite's containers (label ``binderlite.managed``, this install's
``binderlite.instance``) that the hub no longer knows are removed; hub servers
whose container is gone are stopped so the hub forgets them; proxy routes to
servers the hub does not know are dropped. On the kubernetes backend the
containers are the install's pods, listed and deleted through the Kubernetes
API (``scheduler/kubepods.py``), by the same rules. Warm pool servers are ordinary hub
users' servers (the pool job records each before it creates the user, and
the hub knows the server before its container exists): their containers are
never orphans; a pooled server whose container died is cleared like any
other, and the pool job replaces it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class Unit:
    """One server's container (or pod), as reconciliation needs it."""

    name: str
    key: tuple[str, str]  # (hub user, server name)
    running: bool
    age: float
    remove: Callable[[], bool]  # False if it was already gone


def _docker_units(settings: Settings) -> list[Unit]:
    def remover(container) -> Callable[[], bool]:
        def remove() -> bool:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                return False
            return True

        return remove

    return [
        Unit(
            c.name,
            (c.labels.get("binderlite.user", ""), c.labels.get("binderlite.server", "")),
            c.status == "running",
            _created_age(c),
            remover(c),
        )
        for c in _managed_containers(settings)
    ]


def _kube_units(settings: Settings) -> list[Unit]:
    from binderlite.scheduler import kubepods

    return [
        Unit(p.name, (p.user, p.server), p.running, p.age, lambda name=p.name: kubepods.delete_pod(settings, name))
        for p in kubepods.managed_pods(settings)
    ]


def server_units(settings: Settings) -> list[Unit]:
    """Every container (or pod) of this install's servers, from the backend the settings name."""
    return _kube_units(settings) if settings.spawner_backend == "kubernetes" else _docker_units(settings)


def reconcile(settings: Settings, grace: float = GRACE_SECONDS) -> dict[str, list[str]]:
    """Fix disagreements; return what was done, by kind, and log one line.

    Containers younger than ``grace`` seconds are left alone (a spawn may be under way).
    """
    client = HubClient(settings)
    users = client.users()
    known = {(u["name"], name) for u in users for name in (u.get("servers") or {})}
    ready = {(u["name"], name) for u in users for name, s in (u.get("servers") or {}).items() if s.get("ready")}
    done: dict[str, list[str]] = {"containers": [], "servers": [], "routes": []}

    present = set()
    for unit in server_units(settings):
        if unit.key in known and unit.running:
            present.add(unit.key)
            continue
        if unit.key in known or unit.age < grace:
            continue
        if unit.remove():
            done["containers"].append(unit.name)
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
