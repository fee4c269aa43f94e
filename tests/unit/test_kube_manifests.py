"""The pod and NetworkPolicy a launch creates on the kubernetes backend, rendered by KubeSpawner's own code.

Each manifest is checked against the Kubernetes API's OpenAPI schemas (kubernetes-validate, strict:
an unknown field fails) for the minor versions k3s ships in 2025–2026, and for what a user's server
is allowed: the image binderlite built (from the registry the nodes pull, never Docker Hub), uid
1000, no privileges, limits, labels, the BINDER_* variables, no token but the server's own, and a
policy that lets it reach the hub and the internet but nothing private.
"""

from __future__ import annotations

import ipaddress
import json

import kubernetes_validate
import pytest
from click.testing import CliRunner
from traitlets.config import Config

from binderlite.cli import main
from binderlite.errors import BadInputError, ConfigError
from binderlite.hub.backends import configure_spawner
from binderlite.hub.kubeimages import ImageRefused, built_by_binderlite, pod_image
from binderlite.hub.kubemanifests import PLACEHOLDER_TOKEN, render_launch
from binderlite.settings import Settings
from tests.helpers.jsonhttp import JsonHandler, serve

# k3s's minor versions of 2025–2026 (its stable channel moves through these); the schemas are the API's own
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35", "1.36", "1.37")
IMAGE = "127.0.0.1:5000/binderlite/gh-jupyterhub-binder-2dexamples-5f3e21:8cd7a4ec2a9e"
PULLED = "binderlite.lab.internal:5000/binderlite/gh-jupyterhub-binder-2dexamples-5f3e21:8cd7a4ec2a9e"
SERVICE_TOKEN = "svc-0123456789abcdef-binderlite-service-token"
OPTIONS = {
    "repo_url": "https://github.com/jupyterhub/binder-examples",
    "binder_ref_url": "https://github.com/jupyterhub/binder-examples/tree/8cd7a4ec2a9e",
    "binder_launch_host": "https://binder.lab.internal/",
    "binder_request": "v2/gh/jupyterhub/binder-examples/HEAD",
    "binder_persistent_request": "v2/gh/jupyterhub/binder-examples/8cd7a4ec2a9e",
}


def kube_settings(**overrides) -> Settings:
    values = {
        "state_dir": "/var/lib/binderlite",
        "spawner_backend": "kubernetes",
        "hub_ip": "10.0.0.5",
        "kube_image_registry": "binderlite.lab.internal:5000",
        "hub_api_token": SERVICE_TOKEN,
        "memory_limit": "2G",
        "cpu_limit": 1.0,
        "http_proxy": "",
        "https_proxy": "",
        "no_proxy": "",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def launch() -> tuple[dict, dict]:
    pod, policy = render_launch(kube_settings(), "ba1ch0d3-x7", "", IMAGE, OPTIONS, check_registry=False)
    return pod, policy


def container(pod: dict) -> dict:
    (only,) = pod["spec"]["containers"]
    return only


def env(pod: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(pod)["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_pod_and_the_policy_are_valid_kubernetes_objects(launch, version):
    for manifest in launch:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_schema_check_catches_a_wrong_field(launch):
    pod = json.loads(json.dumps(launch[0]))
    container(pod)["securityContext"]["allowPrivilegeEscalaton"] = False  # misspelt: Kubernetes would drop it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_pod_runs_the_image_binderlite_built_from_the_registry_the_nodes_pull(launch):
    pod, _ = launch
    assert container(pod)["image"] == PULLED
    assert container(pod)["imagePullPolicy"] == "IfNotPresent"
    assert pod["spec"]["imagePullSecrets"] == []  # nothing to log in to: the mirror is binderlite's registry
    assert container(pod)["args"] == ["jupyterhub-singleuser"]


def test_the_pod_runs_as_uid_1000_without_privileges(launch):
    pod, _ = launch
    security = container(pod)["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"], security["runAsNonRoot"]) == (1000, 1000, True)
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in security or security["privileged"] is False
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["spec"].get("hostNetwork") is not True and pod["spec"]["volumes"] == []


def test_the_pod_has_the_settings_limits_and_guarantees(launch):
    pod, _ = launch
    resources = container(pod)["resources"]
    assert resources["limits"] == {"cpu": 1.0, "memory": 2 * 1024**3}
    assert resources["requests"] == {"cpu": 0.1, "memory": 512 * 1024**2}


def test_an_access_rules_limits_replace_the_defaults():
    options = {**OPTIONS, "limits": {"memory_limit": "256M", "cpu_limit": 0.05}}
    pod, _ = render_launch(kube_settings(), "alice", "gh-org-repo", IMAGE, options, check_registry=False)
    resources = container(pod)["resources"]
    assert resources["limits"] == {"cpu": 0.05, "memory": 256 * 1024**2}
    assert resources["requests"] == {"cpu": 0.05, "memory": 256 * 1024**2}  # never above the limit


def test_the_pod_carries_the_contracts_labels(launch):
    labels = launch[0]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "binderlite"
    assert labels["binderlite.managed"] == "1"
    assert labels["binderlite.instance"] == "9a56db2f182629be"  # sha256("/var/lib/binderlite")[:16]
    assert labels["hub.jupyter.org/username"] == "ba1ch0d3-x7"
    assert labels["hub.jupyter.org/servername"] == ""
    assert labels["component"] == "singleuser-server"
    assert launch[0]["metadata"]["namespace"] == "binderlite"


def test_the_pod_gets_the_binder_variables(launch):
    variables = env(launch[0])
    assert variables["BINDER_REPO_URL"] == OPTIONS["repo_url"]
    assert variables["BINDER_REF_URL"] == OPTIONS["binder_ref_url"]
    assert variables["BINDER_LAUNCH_HOST"] == OPTIONS["binder_launch_host"]
    assert variables["BINDER_REQUEST"] == OPTIONS["binder_request"]
    assert variables["BINDER_PERSISTENT_REQUEST"] == OPTIONS["binder_persistent_request"]
    assert variables["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] == "1"
    assert variables["JUPYTERHUB_API_URL"] == "http://10.0.0.5:8081/hub/api"


def test_no_token_but_the_servers_own_is_in_the_pod(launch):
    text = json.dumps(launch[0])
    assert SERVICE_TOKEN not in text
    tokens = {
        name: value
        for name, value in env(launch[0]).items()
        if "TOKEN" in name and name != "JUPYTERHUB_ALLOW_TOKEN_IN_URL"
    }
    assert set(tokens.values()) == {PLACEHOLDER_TOKEN}  # JUPYTERHUB_API_TOKEN (and its old name): this server's


def test_user_options_carrying_a_token_are_refused():
    with pytest.raises(BadInputError, match="must not carry a token"):
        render_launch(kube_settings(), "alice", "", IMAGE, {"token": "abc"}, check_registry=False)


@pytest.mark.parametrize(
    "image",
    [
        "jupyter/base-notebook:latest",  # Docker Hub
        "docker.io/library/python:3.12",
        "ghcr.io/binderlite/gh-org-repo:abc",  # another registry
        "127.0.0.1:5000/other/gh-org-repo:abc",  # binderlite's registry, outside its prefix
        "127.0.0.1:5000/binderlite/../evil:abc",
        "127.0.0.1:5000/binderlite/x@sha256:" + "0" * 64,
        "127.0.0.1:5000/binderlite/gh-org-repo",  # no tag
    ],
)
def test_a_foreign_image_is_refused_before_any_pod_exists(image):
    with pytest.raises(ImageRefused):
        pod_image(kube_settings(), image)
    with pytest.raises(BadInputError, match="refusing"):
        render_launch(kube_settings(), "alice", "", image, check_registry=False)


def test_the_registry_name_is_kept_when_the_nodes_use_it_too():
    assert pod_image(kube_settings(kube_image_registry=""), IMAGE) == IMAGE


class FakeRegistry:
    """A Docker registry's v2 API: one image with repo2docker's label, one without."""

    def __init__(self):
        configs = {
            "sha256:built": {"config": {"Labels": {"repo2docker.version": "2026.4.0"}}},
            "sha256:base": {"config": {"Labels": {}}},
        }
        manifests = {"binderlite/built:1": "sha256:built", "binderlite/base:bookworm": "sha256:base"}

        class Handler(JsonHandler):
            def do_GET(self):  # noqa: N802
                parts = self.path.split("/")
                body: dict | None = None
                if "/manifests/" in self.path:
                    repo = "/".join(parts[2:-2]) + ":" + parts[-1]
                    if repo in manifests:
                        body = {"schemaVersion": 2, "config": {"digest": manifests[repo]}, "layers": []}
                elif "/blobs/" in self.path:
                    body = configs.get(parts[-1])
                self.answer(200 if body else 404, body or {"errors": [{"code": "MANIFEST_UNKNOWN"}]})

        self.httpd = serve(Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def registry():
    fake = FakeRegistry()
    yield fake.address
    fake.httpd.shutdown()


def test_only_images_with_repo2dockers_label_in_binderlites_registry_start(registry):
    assert built_by_binderlite(registry, f"{registry}/binderlite/built:1") is None
    assert "not built by binderlite" in built_by_binderlite(registry, f"{registry}/binderlite/base:bookworm")
    assert "not in binderlite's registry" in built_by_binderlite(registry, f"{registry}/binderlite/missing:1")
    settings = kube_settings(registry=registry)
    pod, _ = render_launch(settings, "alice", "", f"{registry}/binderlite/built:1")
    assert container(pod)["image"] == "binderlite.lab.internal:5000/binderlite/built:1"
    with pytest.raises(BadInputError, match="not built by binderlite"):
        render_launch(settings, "alice", "", f"{registry}/binderlite/base:bookworm")


def test_the_policy_selects_exactly_the_pods_of_this_install(launch):
    pod, policy = launch
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert selector["binderlite.instance"] == "9a56db2f182629be"
    assert policy["metadata"]["namespace"] == pod["metadata"]["namespace"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_the_policy_lets_in_only_the_hubs_machine_on_the_server_port(launch):
    (rule,) = launch[1]["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.0.0.5/32"}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8888}]
    assert container(launch[0])["ports"][0]["containerPort"] == 8888


def test_the_policy_lets_in_the_networks_the_operator_names():
    _, policy = render_launch(
        kube_settings(kube_ingress_networks="10.42.0.0/32, 10.42.0.1/32"), "a", "", IMAGE, check_registry=False
    )
    assert policy["spec"]["ingress"][0]["from"] == [
        {"ipBlock": {"cidr": "10.42.0.0/32"}},
        {"ipBlock": {"cidr": "10.42.0.1/32"}},
    ]


def reachable(policy: dict, address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether an egress rule with ipBlocks lets a pod reach ``address:port`` (selector rules aside)."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"]["egress"]:
        ports = rule.get("ports")
        if ports and not any(p["port"] == port and p["protocol"] == protocol for p in ports):
            continue
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if not block or ipaddress.ip_network(block["cidr"]).version != ip.version:
                continue
            inside = ip in ipaddress.ip_network(block["cidr"])
            if inside and not any(ip in ipaddress.ip_network(n) for n in block.get("except", [])):
                return True
    return False


def test_the_policy_lets_a_server_reach_the_hub_and_nothing_private_but_the_hub(launch):
    _, policy = launch
    assert reachable(policy, "10.0.0.5", 8081)
    assert not reachable(policy, "10.0.0.5", 22)  # the hub's machine, another port
    for address in ("10.42.1.17", "10.43.0.1", "192.168.50.11", "172.16.0.4", "169.254.169.254", "127.0.0.1"):
        assert not reachable(policy, address, 8888) and not reachable(policy, address, 443), address
    assert not reachable(policy, "fd00::1", 443) and not reachable(policy, "::ffff:10.0.0.1", 443)
    assert reachable(policy, "151.101.0.223", 443)  # the internet, as on the docker backend and mybinder.org


def test_the_policy_lets_dns_reach_the_clusters_dns_pods_only(launch):
    (dns,) = [rule for rule in launch[1]["spec"]["egress"] if any(p["port"] == 53 for p in rule.get("ports", []))]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]


def test_a_configured_proxy_on_the_private_network_is_reachable():
    _, policy = render_launch(kube_settings(http_proxy="http://10.0.0.9:3128"), "a", "", IMAGE, check_registry=False)
    assert reachable(policy, "10.0.0.9", 3128)
    pod, _ = render_launch(kube_settings(http_proxy="http://10.0.0.9:3128"), "a", "", IMAGE, check_registry=False)
    assert env(pod)["HTTP_PROXY"] == "http://10.0.0.9:3128" and "10.0.0.5" in env(pod)["NO_PROXY"]


def test_the_hub_uses_binderlites_kubespawner_with_the_settings():
    c = Config()
    configure_spawner(c, kube_settings(kube_namespace="lab-servers"), "10.0.0.5")
    assert c.JupyterHub.spawner_class == "binderlite.hub.kubespawner.BinderKubeSpawner"
    assert c.KubeSpawner.namespace == "lab-servers"
    assert c.JupyterHub.hub_connect_url == "http://10.0.0.5:8081"
    c = Config()
    configure_spawner(c, kube_settings(kube_hub_url="http://hub.lab.internal:8081/"), "10.0.0.5")
    assert c.JupyterHub.hub_connect_url == "http://hub.lab.internal:8081"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hub_ip": ""}, "hub_ip is empty"),
        ({"registry": ""}, "registry is empty"),
        ({"auth_mode": "authenticated"}, "persistent_homes"),
        ({"kube_memory_guarantee": "4G"}, "kube_memory_guarantee"),
        ({"kube_cpu_guarantee": 2.0}, "kube_cpu_guarantee"),
        ({"kube_namespace": "Lab_Servers"}, "namespace name"),
        ({"kube_image_registry": "https://registry/x"}, "registry name"),
    ],
)
def test_a_kubernetes_setting_that_cannot_work_is_refused_with_what_to_do(overrides, message):
    with pytest.raises(ConfigError, match=message):
        kube_settings(**overrides)


def test_the_command_prints_the_manifests_for_operators(tmp_path):
    config = tmp_path / "binderlite.toml"
    config.write_text(
        'spawner_backend = "kubernetes"\nhub_ip = "10.0.0.5"\nkube_image_registry = "binderlite.lab.internal:5000"\n'
        f'state_dir = "{tmp_path}"\n'
    )
    result = CliRunner().invoke(
        main, ["--config", str(config), "kube-manifests", "--user", "alice", "--image", IMAGE, "--no-registry-check"]
    )
    assert result.exit_code == 0, result.output
    documents = [json.loads(doc) for doc in result.output.split("\n---\n")]
    assert [d["kind"] for d in documents] == ["Pod", "NetworkPolicy"]
    assert container(documents[0])["image"] == PULLED
    refused = CliRunner().invoke(
        main, ["--config", str(config), "kube-manifests", "--user", "a", "--image", "jupyter/base-notebook:latest"]
    )
    assert refused.exit_code != 0 and "refusing" in refused.output and "Traceback" not in refused.output
