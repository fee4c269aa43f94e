"""Users' pods on the Kubernetes API, as reconciliation sees them (kubernetes backend).

Lists the pods of this install (``hub/kubeobjects.py``'s labels) in
``kube_namespace`` and deletes orphans, through the cluster's REST API with
the kubeconfig of ``kube_config`` (empty: the in-cluster service account),
using ``kubernetes_asyncio`` (KubeSpawner's client, from the ``kubernetes``
extra) run to completion per call: the scheduler is synchronous. A pod is
known by KubeSpawner's annotations (the hub's user and server names; labels
hold only a slug of them). Images on the nodes are the kubelet's to collect
(its image GC at disk pressure); the scheduler's disk GC only looks after
this machine's Docker, where builds run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from dataclasses import dataclass

from binderlite.errors import ConfigError, UnavailableError
from binderlite.hub.kubeobjects import label_selector
from binderlite.settings import Settings

DELETE_GRACE_SECONDS = 1  # as KubeSpawner's own delete_grace_period
REQUEST_TIMEOUT = 30


@dataclass
class Pod:
    """One user pod: whose server it is, whether it runs, how old it is."""

    name: str
    user: str
    server: str
    phase: str
    created: float  # seconds since the epoch

    @property
    def running(self) -> bool:
        return self.phase == "Running"

    @property
    def age(self) -> float:
        return time.time() - self.created


async def _client(settings: Settings):
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    if settings.kube_config:
        await config.load_kube_config(config_file=settings.kube_config, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


async def _list(settings: Settings) -> list[Pod]:
    from kubernetes_asyncio import client

    async with await _client(settings) as api_client:
        found = await client.CoreV1Api(api_client).list_namespaced_pod(
            settings.kube_namespace, label_selector=label_selector(settings), _request_timeout=REQUEST_TIMEOUT
        )
    pods = []
    for item in found.items:
        meta = item.metadata
        notes = meta.annotations or {}
        created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else 0.0
        pods.append(
            Pod(
                name=meta.name,
                user=notes.get("hub.jupyter.org/username", ""),
                server=notes.get("hub.jupyter.org/servername", ""),
                phase=(item.status.phase if item.status else None) or "Unknown",
                created=created,
            )
        )
    return pods


async def _delete(settings: Settings, name: str) -> bool:
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.rest import ApiException

    async with await _client(settings) as api_client:
        try:
            await client.CoreV1Api(api_client).delete_namespaced_pod(
                name,
                settings.kube_namespace,
                grace_period_seconds=DELETE_GRACE_SECONDS,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:  # gone already (deleted by the hub, or its node)
                return False
            raise
    return True


def managed_pods(settings: Settings) -> list[Pod]:
    """This install's user pods; UnavailableError if the cluster does not answer (nothing is then changed)."""
    return _run(_list(settings), "list the servers' pods")


def delete_pod(settings: Settings, name: str) -> bool:
    """Delete one pod; False if it was already gone."""
    return _run(_delete(settings, name), f"delete pod {name}")


def _run(call, what: str):
    if importlib.util.find_spec("kubernetes_asyncio") is None:
        call.close()
        raise ConfigError(
            f"Could not {what}: spawner_backend is 'kubernetes' but its client is not installed; install "
            "binderlite[kubernetes] (pip install 'binderlite[kubernetes]') into binderlite's environment."
        )
    try:
        return asyncio.run(call)
    except Exception as exc:  # the client's many kinds: configuration, TLS, HTTP, API
        raise UnavailableError(
            f"Could not {what} through the Kubernetes API ({exc.__class__.__name__}: {str(exc)[:200]})."
        ) from None
