"""Which spawner the hub uses, configured from binderlite's settings: one function per backend.

``configure_spawner`` is all the hub's config calls; ``spawner_backend``
names the backend: Docker (``BinderSpawner``, a DockerSpawner, on this
machine) or Kubernetes (``BinderKubeSpawner``, a KubeSpawner, pods on a
cluster), with the same guarantees: only images binderlite built, uid 1000,
limits, no privileges, the launch token opening only its server.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Any

from binderlite.errors import ConfigError
from binderlite.hub.homes import ensure_home
from binderlite.hub.kubeimages import checked_pod_image
from binderlite.hub.kubeobjects import SERVER_PORT, hub_host, network_policy, pod_hub_url, pod_labels
from binderlite.sandbox.dockernet import ensure_networks
from binderlite.settings import Settings, proxy_environment

JOVYAN = 1000


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


def configure_kubernetes(c: Any, settings: Settings, hub_ip: str) -> None:
    """One pod per launch on a Kubernetes cluster (``binderlite.hub.kubespawner``); builds stay here."""
    if importlib.util.find_spec("kubespawner") is None:
        raise ConfigError(
            "Setting spawner_backend is 'kubernetes' but KubeSpawner is not installed: install "
            "binderlite[kubernetes] (pip install 'binderlite[kubernetes]') into binderlite's environment."
        )
    c.JupyterHub.spawner_class = "binderlite.hub.kubespawner.BinderKubeSpawner"
    if settings.kube_config:  # KubeSpawner reads the kubeconfig KUBECONFIG names (else the in-cluster account)
        os.environ["KUBECONFIG"] = settings.kube_config
    c.JupyterHub.hub_connect_url = pod_hub_url(settings)  # the hub listens on hub_ip; pods may name it otherwise
    c.Spawner.start_timeout = settings.launch_timeout
    c.Spawner.http_timeout = min(settings.launch_timeout, 300)
    c.Spawner.cmd = ["jupyterhub-singleuser"]
    c.KubeSpawner.namespace = settings.kube_namespace
    c.KubeSpawner.port = SERVER_PORT
    # Nodes pull from binderlite's registry only (the name is rewritten to it, registries.yaml mirrors it);
    # a tag is one resolved commit, so a pulled image never needs pulling again.
    c.KubeSpawner.image_pull_policy = "IfNotPresent"
    c.BinderKubeSpawner.image_check = functools.partial(checked_pod_image, settings)
    c.KubeSpawner.uid = JOVYAN
    c.KubeSpawner.gid = JOVYAN
    c.KubeSpawner.fs_gid = None  # no volumes are mounted, so no group needs to own one
    c.KubeSpawner.privileged = False
    c.KubeSpawner.allow_privilege_escalation = False
    c.KubeSpawner.container_security_context = {
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c.KubeSpawner.automount_service_account_token = False
    c.KubeSpawner.extra_pod_config = {"enableServiceLinks": False}  # no variables naming the cluster's services
    c.KubeSpawner.mem_limit = settings.memory_limit
    c.KubeSpawner.cpu_limit = settings.cpu_limit
    c.KubeSpawner.mem_guarantee = settings.kube_memory_guarantee
    c.KubeSpawner.cpu_guarantee = settings.kube_cpu_guarantee
    c.KubeSpawner.extra_labels = pod_labels(settings)
    # KubeSpawner's common labels come last and would say managed-by "kubespawner": the pods are binderlite's
    c.KubeSpawner.common_labels = {
        "app": "jupyterhub",
        "heritage": "jupyterhub",
        "app.kubernetes.io/name": "jupyterhub",
        "app.kubernetes.io/managed-by": "binderlite",
    }
    c.KubeSpawner.environment = proxy_environment(settings, bypass=(hub_host(settings),))
    c.BinderKubeSpawner.network_policy = network_policy(settings)


BACKENDS: dict[str, Callable[[Any, Settings, str], None]] = {
    "docker": configure_docker,
    "kubernetes": configure_kubernetes,
}


def configure_spawner(c: Any, settings: Settings, hub_ip: str) -> None:
    """Configure the hub's spawner for ``settings.spawner_backend``."""
    BACKENDS[settings.spawner_backend](c, settings, hub_ip)
