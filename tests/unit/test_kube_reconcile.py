"""Reconciliation on the kubernetes backend, against a fake Kubernetes API server and a fake hub over HTTP.

The API server answers as the real one does: ``GET /api/v1/namespaces/<ns>/pods?labelSelector=…``
with a recorded ``PodList`` (tests/fixtures/kubernetes/podlist.json: three pods of this install, in
the format a k3s server returns), and ``DELETE /api/v1/namespaces/<ns>/pods/<name>`` with the pod.
Nothing of binderlite's own is replaced: the scheduler reads the kubeconfig, asks over HTTP and
decides.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from binderlite.errors import UnavailableError
from binderlite.hub.kubeobjects import label_selector
from binderlite.scheduler import kubepods
from binderlite.scheduler.reconcile import reconcile
from binderlite.settings import Settings
from tests.helpers.jsonhttp import JsonHandler, serve

RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes" / "podlist.json"
STATE_DIR = "/var/lib/binderlite"  # the recording's pods carry this install's instance label
NAMESPACE = "binderlite"
KNOWN, ORPHAN, YOUNG = "jupyter-ba1ch0d3-x7", "jupyter-k9ml2p0q-4f", "jupyter-ada--gh-org-repo"


class FakeCluster:
    """The Kubernetes API (pods of one namespace) and JupyterHub's API with its proxy's, on 127.0.0.1."""

    def __init__(self, pods: dict, hub_users: list[dict]):
        self.pods = pods
        self.hub_users = hub_users
        self.requests: list[tuple[str, str]] = []
        self.selectors: list[str] = []
        self.stopped: list[str] = []
        cluster = self

        class Handler(JsonHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urllib.parse.urlsplit(self.path)
                cluster.requests.append(("GET", url.path))
                if url.path == f"/api/v1/namespaces/{NAMESPACE}/pods":
                    query = urllib.parse.parse_qs(url.query)
                    cluster.selectors.append(query.get("labelSelector", [""])[0])
                    return self.answer(200, cluster.pods)
                if url.path == "/hub/api/users":
                    return self.answer(200, cluster.hub_users)
                if url.path == "/api/routes":
                    return self.answer(200, {})
                return self.answer(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})

            def do_DELETE(self):  # noqa: N802
                path = urllib.parse.urlsplit(self.path).path
                cluster.requests.append(("DELETE", path))
                prefix = f"/api/v1/namespaces/{NAMESPACE}/pods/"
                if path.startswith(prefix):
                    name = path[len(prefix) :]
                    for item in cluster.pods["items"]:
                        if item["metadata"]["name"] == name:
                            gone = copy.deepcopy(item)
                            gone["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                            gone["metadata"]["deletionGracePeriodSeconds"] = 1
                            return self.answer(200, gone)
                    return self.answer(
                        404,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": f'pods "{name}" not found',
                            "reason": "NotFound",
                            "details": {"name": name, "kind": "pods"},
                            "code": 404,
                        },
                    )
                if path.startswith("/hub/api/users/"):
                    cluster.stopped.append(path)
                    self.send_response(204)
                    self.end_headers()
                    return None
                return self.answer(404, {})

        self.httpd = serve(Handler)
        self.port = self.httpd.server_address[1]

    def deleted(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.requests if method == "DELETE" and "/pods/" in path]


def recorded_pods(young: str) -> dict:
    """The recording, with the young pod created a moment ago."""
    pods = json.loads(RECORDING.read_text())
    for item in pods["items"]:
        if item["metadata"]["name"] == young:
            item["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    return pods


@pytest.fixture
def cluster(tmp_path) -> Iterator[tuple[FakeCluster, Settings]]:
    hub_users = [
        {"name": "ba1ch0d3-x7", "servers": {"": {"name": "", "ready": True}}},  # its pod runs: kept
        {"name": "zz-gone", "servers": {"": {"name": "", "ready": True}}},  # its pod is gone: the hub forgets it
    ]
    fake = FakeCluster(recorded_pods(YOUNG), hub_users)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: lab, cluster: {{server: 'http://127.0.0.1:{fake.port}'}}}}]\n"
        "users: [{name: hub, user: {token: not-a-real-token}}]\n"
        "contexts: [{name: lab, context: {cluster: lab, user: hub}}]\ncurrent-context: lab\n"
    )
    settings = Settings(
        state_dir=STATE_DIR,
        spawner_backend="kubernetes",
        kube_config=str(kubeconfig),
        kube_namespace=NAMESPACE,
        hub_ip="127.0.0.1",
        hub_port=fake.port,
        proxy_api_port=fake.port,
        hub_api_token="svc-token",
        proxy_auth_token="proxy-token",
    )
    yield fake, settings
    fake.httpd.shutdown()


def test_an_orphan_pod_is_deleted_a_known_one_kept_and_a_young_one_left_alone(cluster):
    fake, settings = cluster
    done = reconcile(settings)
    assert fake.deleted() == [ORPHAN]
    assert done["containers"] == [ORPHAN]
    assert done["servers"] == ["zz-gone/"]  # the hub's server whose pod is gone is stopped
    assert fake.stopped == ["/hub/api/users/zz-gone/server"]


def test_pods_are_listed_by_this_installs_labels_only(cluster):
    fake, settings = cluster
    reconcile(settings)
    assert fake.selectors == [
        "app.kubernetes.io/managed-by=binderlite,binderlite.managed=1,binderlite.instance=9a56db2f182629be"
    ]
    assert fake.selectors[0] == label_selector(settings)


def test_the_recorded_pods_read_as_the_hubs_users_and_servers(cluster):
    _, settings = cluster
    pods = {p.name: p for p in kubepods.managed_pods(settings)}
    assert (pods[KNOWN].user, pods[KNOWN].server, pods[KNOWN].running) == ("ba1ch0d3-x7", "", True)
    assert (pods[YOUNG].user, pods[YOUNG].server, pods[YOUNG].running) == ("ada", "gh-org-repo", False)
    assert pods[YOUNG].age < 60 and pods[ORPHAN].age > 3600


def test_a_pod_already_gone_is_not_counted_as_removed(cluster):
    fake, settings = cluster
    assert kubepods.delete_pod(settings, "jupyter-nobody") is False
    assert kubepods.delete_pod(settings, ORPHAN) is True


def test_a_cluster_that_does_not_answer_changes_nothing_and_says_so(cluster, tmp_path):
    fake, settings = cluster
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(Path(settings.kube_config).read_text().replace(f":{fake.port}'", ":1'"))
    with pytest.raises(UnavailableError, match="Could not list the servers' pods through the Kubernetes API"):
        reconcile(settings.with_overrides(kube_config=str(dead)))
    assert fake.stopped == []  # no server is stopped because its pod could not be seen
