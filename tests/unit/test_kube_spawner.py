"""The spawner against the Kubernetes API: the namespace and the policy before each spawn, then a whole spawn.

A fake API server on 127.0.0.1 answers as the real one does (201 Created, then 409 AlreadyExists,
403 Forbidden; pod lists and watches, a created pod reported running), and records what it was sent;
the spawner is binderlite's, configured from settings, and its start() is KubeSpawner's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from unittest import mock

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import Configuration
from tornado import web
from traitlets.config import Config

from binderlite.hub.backends import configure_kubernetes
from binderlite.hub.kubeimages import pod_image
from binderlite.hub.kubeobjects import network_policy
from binderlite.settings import Settings
from tests.helpers.jsonhttp import JsonHandler, serve

SETTINGS = Settings(state_dir="/var/lib/binderlite", spawner_backend="kubernetes", hub_ip="10.0.0.5")
IMAGE = "127.0.0.1:5000/binderlite/gh-org-repo-77aa01:0f1e2d3c4b5a"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/binderlite/networkpolicies"


class FakeApi:
    """Namespaces and NetworkPolicies of the Kubernetes API; ``forbid`` answers 403 to policy writes."""

    def __init__(self, forbid: bool = False):
        self.seen: list[tuple[str, str, dict]] = []
        self.objects: set[str] = set()
        api = self

        class Handler(JsonHandler):
            def write(self, method: str) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.seen.append((method, self.path, body))
                if forbid and "networkpolicies" in self.path:
                    return self.answer(403, {"kind": "Status", "reason": "Forbidden", "code": 403})
                key = self.path if method == "PUT" else f"{self.path}/{body['metadata']['name']}"
                if method == "POST" and key in api.objects:
                    return self.answer(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409})
                api.objects.add(key)
                return self.answer(201 if method == "POST" else 200, body)

            def do_POST(self):  # noqa: N802 (http.server's name)
                self.write("POST")

            def do_PUT(self):  # noqa: N802
                self.write("PUT")

        self.httpd = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


async def spawn_twice(api: FakeApi) -> None:
    """Run the spawner's pre-spawn step twice, as two launches would."""
    c = Config()
    configure_kubernetes(c, SETTINGS, SETTINGS.hub_ip)
    c.BinderKubeSpawner.image_check = lambda image: pod_image(SETTINGS, image)  # the registry is tested elsewhere
    configuration = Configuration(host=api.url)
    before = Configuration.get_default_copy()
    Configuration.set_default(configuration)
    try:
        from binderlite.hub.kubespawner import BinderKubeSpawner

        for _ in range(2):
            with mock.patch("kubespawner.spawner.load_config"):
                spawner = BinderKubeSpawner(
                    config=c,
                    user=SimpleNamespace(name="ada", id=1, url="/user/ada/"),
                    hub=SimpleNamespace(public_host="", url="", base_url="/hub/", api_url=""),
                    orm_spawner=SimpleNamespace(name="", display_name="", server=None, last_activity=None),
                    _mock=True,
                )
            spawner.user_options = {"image": IMAGE}
            await spawner.load_user_options()  # KubeSpawner's shared clients close with the loop
    finally:
        Configuration.set_default(before)


@pytest.fixture
def api():
    fake = FakeApi()
    yield fake
    fake.httpd.shutdown()


def test_the_namespace_and_the_policy_are_made_then_the_policy_kept_current(api):
    asyncio.run(spawn_twice(api))
    calls = [(method, path) for method, path, _ in api.seen]
    name = network_policy(SETTINGS)["metadata"]["name"]
    assert calls == [
        ("POST", "/api/v1/namespaces"),
        ("POST", POLICIES),
        ("POST", "/api/v1/namespaces"),  # 409: it exists
        ("POST", POLICIES),  # 409: it exists, so it is replaced with the configured one
        ("PUT", f"{POLICIES}/{name}"),
    ]
    namespace = api.seen[0][2]
    assert namespace["metadata"]["name"] == "binderlite"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert api.seen[1][2] == network_policy(SETTINGS) == api.seen[4][2]


def test_no_server_starts_when_its_policy_cannot_be_made():
    fake = FakeApi(forbid=True)
    try:
        with pytest.raises(web.HTTPError) as refused:
            asyncio.run(spawn_twice(fake))
    finally:
        fake.httpd.shutdown()
    assert refused.value.status_code == 500 and "cannot be confined" in refused.value.log_message


class FakeCluster(FakeApi):
    """Also pods and events: list, watch (an empty watch that ends, as one that timed out), create.

    A created pod is listed as the node would report it once running (an IP, its container ready).
    """

    def __init__(self):
        super().__init__()
        self.created: list[dict] = []
        handler = self.httpd.RequestHandlerClass
        cluster = self

        def do_get(self):  # noqa: N802
            path, _, query = self.path.partition("?")
            if "watch=true" in query:
                time.sleep(0.2)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if path.endswith("/pods"):
                return self.answer(
                    200,
                    {
                        "kind": "PodList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "7"},
                        "items": [running(p) for p in cluster.created],
                    },
                )
            if path.endswith("/events"):
                return self.answer(
                    200, {"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}, "items": []}
                )
            return self.answer(404, {"kind": "Status", "code": 404})

        original_write = handler.write

        def write(self, method: str) -> None:
            if method == "POST" and self.path.endswith("/pods"):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                cluster.created.append(body)
                return self.answer(201, body)
            return original_write(self, method)

        handler.do_GET = do_get
        handler.write = write


def running(pod: dict) -> dict:
    pod = json.loads(json.dumps(pod))
    pod["metadata"].update(
        namespace="binderlite",
        uid="5b0c2f7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f",
        resourceVersion="8",
        creationTimestamp="2026-11-27T10:00:00Z",
    )
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.42.1.23",
        "containerStatuses": [{"name": "notebook", "ready": True, "restartCount": 0, "image": "x", "imageID": "y"}],
    }
    return pod


async def spawn(api: FakeApi) -> str:
    """A whole spawn through KubeSpawner's start(), as the hub runs it; returns the server's URL."""
    c = Config()
    configure_kubernetes(c, SETTINGS, SETTINGS.hub_ip)
    c.BinderKubeSpawner.image_check = lambda image: pod_image(SETTINGS, image)
    c.KubeSpawner.start_timeout = 20
    before = Configuration.get_default_copy()
    Configuration.set_default(Configuration(host=api.url))
    try:
        from binderlite.hub.kubespawner import BinderKubeSpawner

        with mock.patch("kubespawner.spawner.load_config"):
            spawner = BinderKubeSpawner(
                config=c,
                user=SimpleNamespace(name="ada", id=1, url="/user/ada/"),
                hub=SimpleNamespace(public_host="", url="", base_url="/hub/", api_url="http://10.0.0.5:8081/hub/api"),
                orm_spawner=SimpleNamespace(name="", display_name="", server=None, last_activity=None),
                _mock=True,
            )
        spawner.api_token = "this-servers-own-token"
        spawner.server = SimpleNamespace(base_url="/user/ada/", orm_server=None)
        spawner.user_options = {"image": IMAGE, "repo_url": "https://github.com/org/repo"}
        try:
            return await asyncio.wait_for(spawner.start(), 30)
        finally:
            for reflector in list(BinderKubeSpawner.reflectors.values()):
                await reflector.stop()
            BinderKubeSpawner.reflectors.clear()
    finally:
        Configuration.set_default(before)


def test_a_whole_spawn_posts_a_valid_confined_pod_and_returns_its_address():
    fake = FakeCluster()
    try:
        url = asyncio.run(spawn(fake))
    finally:
        fake.httpd.shutdown()
    assert url == "http://10.42.1.23:8888"
    writes = [(method, path) for method, path, _ in fake.seen]
    assert writes[:2] == [("POST", "/api/v1/namespaces"), ("POST", POLICIES)]  # before the pod, never after
    (pod,) = fake.created  # exactly what the API server received
    kubernetes_validate.validate(pod, "1.34", strict=True)
    (notebook,) = pod["spec"]["containers"]
    assert notebook["image"] == IMAGE  # kube_image_registry is empty here: the nodes use `registry`'s name
    assert notebook["securityContext"]["runAsUser"] == 1000
    assert notebook["securityContext"]["allowPrivilegeEscalation"] is False
    variables = {e["name"]: e["value"] for e in notebook["env"]}
    assert variables["JUPYTERHUB_API_TOKEN"] == "this-servers-own-token"
    assert variables["BINDER_REPO_URL"] == "https://github.com/org/repo"
    assert pod["metadata"]["labels"]["binderlite.managed"] == "1"
