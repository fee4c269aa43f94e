"""The Ansible role's k3s files, rendered as the role renders them and checked against k3s's documented formats.

registries.yaml and config.yaml are validated with the JSON Schemas in tests/schemas/, written from
docs.k3s.io (each schema cites its page); the hub's kubeconfig is k3s's own k3s.yaml (in the format k3s
writes it) with the server's address in place of 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jinja2
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ansible" / "roles" / "binderlite" / "templates"
SCHEMAS = ROOT / "tests" / "schemas"
K3S_YAML = ROOT / "tests" / "fixtures" / "k3s" / "k3s.yaml"
CA_FILE = "/etc/rancher/k3s/binderlite-registry-ca.crt"


def ansible_bool(value: object) -> bool:
    """Ansible's ``bool`` filter, for values an inventory gives (true, "yes", "1", 1, ...)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"yes", "on", "1", "true", "y", "t"}


def render(template: str, **variables: object) -> str:
    """Render a role template with ansible's settings for templates (trim_blocks) and its ``bool`` filter."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["bool"] = ansible_bool
    return env.get_template(template).render(ansible_managed="Ansible managed", **variables)


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(
                None, None, f"keys given twice: {sorted(duplicates)}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> dict:
    return yaml.load(text, Loader=UniqueKeyLoader)


def validate(document: object, schema: str) -> None:
    jsonschema.Draft202012Validator(json.loads((SCHEMAS / schema).read_text())).validate(document)


def registries(name: str = "10.0.0.5:5000", tls: object = False) -> dict:
    text = render(
        "registries.yaml.j2",
        binderlite_k3s_registry_name=name,
        binderlite_k3s_registry_tls=tls,
        _binderlite_k3s_registry_ca=CA_FILE,
    )
    document = load(text)
    validate(document, "k3s-registries.schema.json")
    return document


def k3s_config(node: str, server: dict | None = None, agent: dict | None = None, taint: object = True) -> dict:
    text = render(
        "k3s-config.yaml.j2",
        _binderlite_k3s_node=node,
        binderlite_k3s_server_address="10.0.0.5",
        binderlite_k3s_server_config=server or {},
        binderlite_k3s_agent_config=agent or {},
        binderlite_k3s_server_taint=taint,
        binderlite_k3s_pod_max_pids=1024,
    )
    document = load(text)
    validate(document, "k3s-config.schema.json")
    return document


def test_registries_http_mirrors_the_registry_name_to_plain_http():
    document = registries("10.0.0.5:5000", tls=False)
    assert document == {"mirrors": {"10.0.0.5:5000": {"endpoint": ["http://10.0.0.5:5000"]}}}


@pytest.mark.parametrize("tls", [True, "yes", "true"])
def test_registries_tls_uses_https_and_trusts_the_roles_ca(tls):
    document = registries("binder.lab.internal:5000", tls=tls)
    assert document["mirrors"] == {"binder.lab.internal:5000": {"endpoint": ["https://binder.lab.internal:5000"]}}
    assert document["configs"] == {"binder.lab.internal:5000": {"tls": {"ca_file": CA_FILE}}}


@pytest.mark.parametrize(
    "bad",
    [
        {"mirrors": {"10.0.0.5:5000": {"endpoint": "http://10.0.0.5:5000"}}},  # endpoint must be a list
        {"mirrors": {"10.0.0.5:5000": {"endpoints": ["http://10.0.0.5:5000"]}}},  # misspelt
        {"mirrors": {"registry": {"endpoint": ["http://registry:5000"]}}},  # no period or colon: not a registry
        {"mirrors": {"10.0.0.5:5000": {"endpoint": ["10.0.0.5:5000"]}}},  # no scheme
        {"configs": {"10.0.0.5:5000": {"tls": {"ca_file": "ca.crt"}}}},  # relative path
        {"configs": {"10.0.0.5:5000": {"tls": {"insecure_skip_verify": "yes"}}}},  # not a boolean
        {"mirror": {}},  # unknown section
    ],
)
def test_the_registries_schema_refuses_what_k3s_would_not_read(bad):
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, "k3s-registries.schema.json")


def test_server_config_names_the_server_address_and_keeps_the_kubeconfig_private():
    document = k3s_config("server")
    assert document == {
        "write-kubeconfig-mode": "0600",
        "tls-san": ["10.0.0.5"],
        "disable": ["traefik"],
        "kubelet-arg": ["pod-max-pids=1024"],
        "node-taint": ["CriticalAddonsOnly=true:NoExecute"],
    }


def test_a_server_without_agents_takes_users_pods():
    assert "node-taint" not in k3s_config("server", taint=False)


def test_agent_config_points_at_the_server_and_limits_processes():
    assert k3s_config("agent") == {"server": "https://10.0.0.5:6443", "kubelet-arg": ["pod-max-pids=1024"]}


def test_extra_config_wins_over_the_roles_without_a_key_given_twice():
    document = k3s_config("server", server={"disable": ["traefik", "servicelb"], "node-ip": "10.0.0.5"})
    assert document["disable"] == ["traefik", "servicelb"]
    assert document["node-ip"] == "10.0.0.5"
    agent = k3s_config("agent", agent={"node-label": ["lab.example.org/gpu=false"], "kubelet-arg": ["max-pods=50"]})
    assert agent["node-label"] == ["lab.example.org/gpu=false"]
    assert agent["server"] == "https://10.0.0.5:6443"


@pytest.mark.parametrize(
    "bad",
    [
        {"--tls-san": ["10.0.0.5"]},  # the flag with its dashes
        {"tls_san": ["10.0.0.5"]},  # underscores are not k3s's spelling
        {"disable": ["ingress"]},  # not a packaged component
        {"server": "10.0.0.5:6443"},  # the server is an https URL
        {"write-kubeconfig-mode": "rw-------"},
    ],
)
def test_the_config_schema_refuses_what_k3s_would_not_read(bad):
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, "k3s-config.schema.json")


def kubeconfig(server_address: str = "10.0.0.5") -> dict:
    text = render(
        "kubeconfig.j2",
        _binderlite_k3s_kubeconfig_text=K3S_YAML.read_text(),
        binderlite_k3s_server_address=server_address,
    )
    assert "https://127.0.0.1" not in text
    document = load(text)
    validate(document, "kubeconfig.schema.json")
    return document


def test_hub_kubeconfig_points_at_the_server_and_keeps_k3s_credentials():
    document = kubeconfig("10.0.0.5")
    original = load(K3S_YAML.read_text())
    assert [c["cluster"]["server"] for c in document["clusters"]] == ["https://10.0.0.5:6443"]
    assert document["users"] == original["users"]
    ca = document["clusters"][0]["cluster"]["certificate-authority-data"]
    assert ca == original["clusters"][0]["cluster"]["certificate-authority-data"]
    base64.b64decode(ca, validate=True)
    # the current context names a cluster and a user that are in the file
    context = {c["name"]: c["context"] for c in document["contexts"]}[document["current-context"]]
    assert context["cluster"] in {c["name"] for c in document["clusters"]}
    assert context["user"] in {u["name"] for u in document["users"]}


def test_the_kubeconfig_schema_refuses_a_file_without_users():
    document = load(K3S_YAML.read_text())
    del document["users"]
    with pytest.raises(jsonschema.ValidationError):
        validate(document, "kubeconfig.schema.json")


def caddyfile(k3s: bool, tls: bool = False) -> str:
    return render(
        "Caddyfile.j2",
        binderlite_tls="selfsigned",
        binderlite_server_name="binder.lab.example.org",
        binderlite_tls_dir="/etc/binderlite/tls",
        binderlite_acme_email="",
        _binderlite_settings={"proxy_port": 8000, "web_port": 8585},
        binderlite_k3s_enabled=k3s,
        binderlite_k3s_registry_tls=tls,
        binderlite_k3s_registry_name="10.0.0.5:5000",
        binderlite_k3s_registry_bind="10.0.0.5",
    )


def test_caddy_serves_the_registry_to_the_nodes_read_only_only_with_k3s():
    assert "5000" not in caddyfile(k3s=False)
    http = caddyfile(k3s=True)
    site = http[http.index("http://10.0.0.5:5000 {") :]
    assert "bind 10.0.0.5" in site
    # only GET and HEAD of the registry API reach the registry; anything else is answered 405 by Caddy
    pull = site[site.index("@pull {") : site.index("handle @pull")]
    assert "method GET HEAD" in pull and "path /v2 /v2/*" in pull
    assert "reverse_proxy 127.0.0.1:5000" in site[site.index("handle @pull") : site.index("handle {")]
    assert '" 405' in site[site.index("handle {") :]
    assert "registry.crt" not in http
    assert "tls /etc/binderlite/tls/registry.crt /etc/binderlite/tls/registry.key" in caddyfile(k3s=True, tls=True)


def test_the_namespace_manifest_enforces_the_restricted_profile():
    document = load(render("k3s-namespace.yaml.j2", binderlite_k3s_namespace="binderlite"))
    assert document["apiVersion"] == "v1" and document["kind"] == "Namespace"
    assert document["metadata"]["name"] == "binderlite"
    assert document["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
