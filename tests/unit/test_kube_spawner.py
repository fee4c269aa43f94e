"""Before each spawn the spawner makes the namespace and the servers' NetworkPolicy on the Kubernetes API.

A fake API server on 127.0.0.1 answers as the real one does (201 Created, then 409 AlreadyExists,
403 Forbidden), and records what it was sent; the spawner is binderlite's, configured from settings.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from unittest import mock

import pytest
from kubernetes_asyncio.client import Configuration
from tornado import web
from traitlets.config import Config

from binderlite.hub.backends import configure_kubernetes
from binderlite.hub.kubeimages import pod_image
from binderlite.hub.kubeobjects import network_policy
from binderlite.settings import Settings

SETTINGS = Settings(state_dir="/var/lib/binderlite", spawner_backend="kubernetes", hub_ip="10.0.0.5")
IMAGE = "127.0.0.1:5000/binderlite/gh-org-repo-77aa01:0f1e2d3c4b5a"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/binderlite/networkpolicies"


class FakeApi:
    """Namespaces and NetworkPolicies of the Kubernetes API; ``forbid`` answers 403 to policy writes."""

    def __init__(self, forbid: bool = False):
        self.seen: list[tuple[str, str, dict]] = []
        self.objects: set[str] = set()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

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
