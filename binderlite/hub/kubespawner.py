"""BinderKubeSpawner: KubeSpawner that starts only images binderlite built, as confined as the docker backend.

Configured by ``hub/backends.py:configure_kubernetes`` (which needs the
``kubernetes`` extra only when chosen). Before each spawn it checks
``user_options`` as BinderSpawner does (an image, no token: the launch token
is the server's own ``JUPYTERHUB_API_TOKEN``, minted by the hub), asks
binderlite's registry whether the image carries repo2docker's label, and
hands the pod the name the nodes pull (``hub/kubeimages.py``); an access
rule's limits replace the defaults. The pod (KubeSpawner's own manifest)
runs as uid/gid 1000 with no capabilities, no privilege escalation, the
runtime's default seccomp profile, no service account token and no service
links, with memory and CPU limits and guarantees, binderlite's labels and
the ``BINDER_*`` variables. The namespace (if missing) and the servers'
NetworkPolicy (``hub/kubeobjects.py``) are created, and the policy brought up
to date, before each spawn, so no pod of this install starts unconfined.
"""

from __future__ import annotations

import asyncio

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from tornado import web
from traitlets import Callable, Dict

from binderlite.hub.kubeimages import ImageRefused
from binderlite.hub.spawner import binder_environment

NAMESPACE_LABELS = {"app.kubernetes.io/managed-by": "binderlite", "pod-security.kubernetes.io/enforce": "restricted"}


class BinderKubeSpawner(KubeSpawner):
    """One pod per launch, from a binderlite-built image, for one token."""

    image_check = Callable(
        None,
        allow_none=True,
        config=True,
        help="Called in a thread with the launcher's image name: returns the name the nodes pull, or raises "
        "ImageRefused (binderlite.hub.kubeimages.checked_pod_image).",
    )
    network_policy = Dict(
        {},
        config=True,
        help="The NetworkPolicy confining binderlite's pods, created or replaced before each spawn; empty: none.",
    )

    async def load_user_options(self) -> None:
        options = self.user_options or {}
        if not options.get("image"):
            raise web.HTTPError(400, "user_options must include 'image'")
        if "token" in options:
            raise web.HTTPError(400, "user_options must not carry a token (the hub stores and shows them).")
        if self.image_check is None:
            raise web.HTTPError(500, "No image check is configured; refusing to start any image.")
        try:
            self.image = await asyncio.get_running_loop().run_in_executor(None, self.image_check, options["image"])
        except ImageRefused as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.apply_limits(options.get("limits") or {})
        await self.ensure_network_policy()
        await super().load_user_options()

    def apply_limits(self, limits: dict) -> None:
        """An access rule's limits (authenticated mode, put there by binderlite's launcher, never by users)."""
        if limits.get("memory_limit"):
            self.mem_limit = limits["memory_limit"]
            if self.mem_guarantee and self.mem_guarantee > self.mem_limit:
                self.mem_guarantee = self.mem_limit
        if limits.get("cpu_limit"):
            self.cpu_limit = float(limits["cpu_limit"])
            if self.cpu_guarantee and self.cpu_guarantee > self.cpu_limit:
                self.cpu_guarantee = self.cpu_limit

    async def ensure_namespace(self) -> None:
        """Create the pods' namespace if missing (under the restricted Pod Security profile, which they meet).

        A kubeconfig that may not create namespaces (403) is fine if the administrator made it.
        """
        body = {"metadata": {"name": self.namespace, "labels": NAMESPACE_LABELS}}
        try:
            await shared_client("CoreV1Api").create_namespace(body)
        except ApiException as exc:
            if exc.status not in (403, 409):
                raise web.HTTPError(
                    500, f"Namespace {self.namespace} could not be made ({exc.status} {exc.reason})."
                ) from None

    async def ensure_network_policy(self) -> None:
        """Create the servers' NetworkPolicy, or replace it with the configured one; a failure stops the spawn."""
        if not self.network_policy:
            return
        await self.ensure_namespace()
        api = shared_client("NetworkingV1Api")
        body, name = self.network_policy, self.network_policy["metadata"]["name"]
        try:
            try:
                await api.create_namespaced_network_policy(self.namespace, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                await api.replace_namespaced_network_policy(name, self.namespace, body)
        except ApiException as exc:
            raise web.HTTPError(
                500, f"Servers cannot be confined (NetworkPolicy {name}: {exc.status} {exc.reason}), so none starts."
            ) from None

    def get_env(self) -> dict[str, str]:
        return {**super().get_env(), **binder_environment(self.user_options)}
