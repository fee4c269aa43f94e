"""Which spawner the hub uses, configured from binderlite's settings: the seam for another backend.

``configure_spawner`` is all the hub's config calls; ``spawner_backend``
names the backend. Docker (``BinderSpawner``, a DockerSpawner) is the one
today; a Kubernetes backend (KubeSpawner) is one more function here and its
own module beside ``spawner.py``, with the same guarantees: only images
binderlite built, uid 1000, limits, no privileges, the launch token opening
only its server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from binderlite.hub.homes import ensure_home
from binderlite.sandbox.dockernet import ensure_networks
from binderlite.settings import Settings, proxy_environment


def configure_docker(c: Any, settings: Settings, hub_ip: str) -> None:
    """One container per launch on this machine's Docker daemon (``binderlite.hub.spawner``)."""
    c.JupyterHub.spawner_class = "binderlite.hub.spawner.BinderSpawner"
    c.Spawner.start_timeout = settings.launch_timeout
    c.Spawner.http_timeout = min(settings.launch_timeout, 300)
    c.DockerSpawner.remove = True
    c.DockerSpawner.pull_policy = "never"
    # Servers join binderlite's own network only (no traffic between them, none to this host but the
    # hub); the proxy reaches each one on a port published on 127.0.0.1.
    c.DockerSpawner.network_name = settings.server_network
    c.DockerSpawner.host_ip = "127.0.0.1"
    c.DockerSpawner.use_internal_ip = False
    c.BinderSpawner.ensure_network = functools.partial(ensure_networks, settings)
    c.DockerSpawner.mem_limit = settings.memory_limit
    c.DockerSpawner.cpu_limit = settings.cpu_limit
    c.DockerSpawner.prefix = "binderlite"
    c.BinderSpawner.instance = settings.state_dir
    # The site's proxy reaches users' code at run time, never stored in an image.
    c.Spawner.environment = proxy_environment(settings, bypass=(hub_ip, "127.0.0.1", "localhost"))
    c.BinderSpawner.pids_limit = settings.pids_limit
    c.BinderSpawner.docker_threads = settings.spawner_docker_threads
    c.DockerSpawner.client_kwargs = {"timeout": 120}
    if settings.auth_mode == "authenticated" and settings.persistent_homes:  # signed-in users keep their work
        c.BinderSpawner.ensure_home = functools.partial(ensure_home, settings)
        c.BinderSpawner.persistent_folder = settings.persistent_folder
    if settings.docker_host:
        c.DockerSpawner.client_kwargs = {"timeout": 120, "base_url": settings.docker_host}


BACKENDS: dict[str, Callable[[Any, Settings, str], None]] = {"docker": configure_docker}


def configure_spawner(c: Any, settings: Settings, hub_ip: str) -> None:
    """Configure the hub's spawner for ``settings.spawner_backend``."""
    BACKENDS[settings.spawner_backend](c, settings, hub_ip)
