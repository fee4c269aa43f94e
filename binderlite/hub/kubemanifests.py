"""The manifests a launch creates on the kubernetes backend, rendered without a cluster.

``render_launch`` configures a hub exactly as ``hub/backends.py`` does, makes a
``BinderKubeSpawner`` for a stand-in user and hub, runs its user-options step
(the image check, with the registry asked or ``check_registry=False``) and
KubeSpawner's own ``get_pod_manifest`` (``kubespawner.objects.make_pod``), and
returns the pod and the servers' NetworkPolicy as plain dicts, as the
Kubernetes API would receive them. Nothing is sent to any cluster: the pod
carries a stand-in server token (the hub mints the real one per spawn).
Used by ``binderlite kube-manifests`` and the tests.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest import mock

from traitlets.config import Config

from binderlite.errors import BadInputError
from binderlite.hub.backends import configure_kubernetes
from binderlite.hub.kubeimages import pod_image
from binderlite.hub.kubeobjects import pod_hub_url
from binderlite.settings import Settings

PLACEHOLDER_TOKEN = "server-token-minted-by-the-hub"  # noqa: S105 (not a secret: a stand-in)


def render_launch(
    settings: Settings,
    user: str,
    server: str,
    image: str,
    user_options: dict[str, Any] | None = None,
    check_registry: bool = True,
) -> list[dict]:
    """[pod, network policy] for launching ``image`` as ``user``'s ``server``; BadInputError for a foreign image."""
    options = {"image": image, **(user_options or {})}
    return asyncio.run(_render(settings, user, server, options, check_registry))


async def _render(settings: Settings, user: str, server: str, options: dict, check_registry: bool) -> list[dict]:
    c = Config()
    configure_kubernetes(c, settings.with_overrides(kube_config=""), settings.hub_ip)  # says if the extra is missing

    from kubernetes_asyncio.client import ApiClient
    from tornado import web

    from binderlite.hub.kubespawner import BinderKubeSpawner

    if not check_registry:
        c.BinderKubeSpawner.image_check = lambda image: pod_image(settings, image)
    hub_url = pod_hub_url(settings)
    hub = SimpleNamespace(public_host="", url=f"{hub_url}/hub/", base_url="/hub/", api_url=f"{hub_url}/hub/api")
    fake_user = SimpleNamespace(name=user, id=1, url=f"/user/{user}/", escaped_name=user)
    orm_spawner = SimpleNamespace(name=server, display_name=server, server=None, last_activity=None)
    # KubeSpawner loads a kubeconfig when it is made; the render neither needs nor reaches a cluster
    with mock.patch("kubespawner.spawner.load_config"):
        spawner = BinderKubeSpawner(config=c, user=fake_user, hub=hub, orm_spawner=orm_spawner, _mock=True)
    try:
        spawner.api_token = PLACEHOLDER_TOKEN
        base_url = f"/user/{user}/{server}/" if server else f"/user/{user}/"
        spawner.server = SimpleNamespace(base_url=base_url, orm_server=None)
        spawner.user_options = options
        spawner.ensure_network_policy = _nothing  # rendered below, never sent
        try:
            await spawner.load_user_options()
        except web.HTTPError as exc:
            raise BadInputError(exc.log_message or str(exc)) from None
        async with ApiClient() as serializer:
            pod = serializer.sanitize_for_serialization(await spawner.get_pod_manifest())
    finally:
        await spawner.api.api_client.close()
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    pod["metadata"]["namespace"] = spawner.namespace
    return [pod, spawner.network_policy]


async def _nothing() -> None:
    return None
