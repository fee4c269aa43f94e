"""The Kubernetes objects binderlite adds to KubeSpawner's pod: its labels and the servers' NetworkPolicy.

Every user pod carries ``app.kubernetes.io/managed-by: binderlite``,
``binderlite.managed: "1"`` and ``binderlite.instance`` (the first 16 hex
digits of sha256(state_dir): a path is no label value); the scheduler lists
pods by them and the policy selects them. The policy, one per install in the
pods' namespace, mirrors the docker backend's kernel rules:

- ingress: only the server port, only from ``kube_ingress_networks`` (where
  this machine's proxy and hub reach pods from; default the hub's address);
- egress: the hub's API (its address and port); DNS to the cluster's DNS pods
  (``k8s-app: kube-dns`` in ``kube-system``, UDP and TCP 53: users' code
  resolves names on the internet, and the hub's URL may be a name); the
  configured HTTP(S) proxies and package indexes; and the internet, minus
  loopback, link-local (cloud metadata), private, shared and reserved networks
  and ``blocked_networks`` (``sandbox/netrules.py``'s list) — so no other pod,
  no node, no service address and nothing on the private network but the hub.
"""

from __future__ import annotations

import hashlib
import ipaddress
import urllib.parse

from binderlite.sandbox.dockernet import index_endpoints
from binderlite.sandbox.netrules import blocked_networks, proxy_endpoints, url_endpoints
from binderlite.settings import Settings

SERVER_PORT = 8888
MANAGED_SELECTOR = {"app.kubernetes.io/managed-by": "binderlite", "binderlite.managed": "1"}


def instance_label(state_dir: str) -> str:
    """This install's ``binderlite.instance`` label value."""
    return hashlib.sha256(state_dir.encode()).hexdigest()[:16]


def pod_labels(settings: Settings) -> dict[str, str]:
    """The labels binderlite puts on every user pod (beside KubeSpawner's own)."""
    return {**MANAGED_SELECTOR, "binderlite.instance": instance_label(settings.state_dir)}


def label_selector(settings: Settings) -> str:
    """The pods of this install, as a ``labelSelector`` query."""
    return ",".join(f"{key}={value}" for key, value in pod_labels(settings).items())


def pod_hub_url(settings: Settings) -> str:
    """The hub's URL as pods reach it (no trailing slash)."""
    return (settings.kube_hub_url or f"http://{settings.hub_ip}:{settings.hub_port}").rstrip("/")


def hub_endpoints(settings: Settings) -> list[tuple[str, int]]:
    """(address, port) of the hub as pods reach it (its name resolved now)."""
    return url_endpoints([pod_hub_url(settings)])


def policy_name(settings: Settings) -> str:
    return f"binderlite-servers-{instance_label(settings.state_dir)}"


def _block(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{32 if ip.version == 4 else 128}"


def _to(endpoints: list[tuple[str, int]]) -> list[dict]:
    return [{"to": [{"ipBlock": {"cidr": _block(a)}}], "ports": [{"protocol": "TCP", "port": p}]} for a, p in endpoints]


def ingress_networks(settings: Settings) -> list[str]:
    """Where pods accept connections from: ``kube_ingress_networks``, else the hub's addresses."""
    given = [part.strip() for part in settings.kube_ingress_networks.split(",") if part.strip()]
    if given:
        return [str(ipaddress.ip_network(text, strict=False)) for text in given]
    return sorted({_block(address) for address, _ in hub_endpoints(settings)})


def network_policy(settings: Settings) -> dict:
    """The NetworkPolicy confining this install's pods (a plain manifest)."""
    v4, v6 = blocked_networks(settings.blocked_networks)
    internet = [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": [str(n) for n in v4]}},
        {"ipBlock": {"cidr": "::/0", "except": [str(n) for n in v6]}},
    ]
    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    allowed = sorted(set(proxy_endpoints(settings)) | set(index_endpoints(settings)))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(settings),
            "namespace": settings.kube_namespace,
            "labels": {"app.kubernetes.io/managed-by": "binderlite"},
        },
        "spec": {
            "podSelector": {"matchLabels": pod_labels(settings)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": cidr}} for cidr in ingress_networks(settings)],
                    "ports": [{"protocol": "TCP", "port": SERVER_PORT}],
                }
            ],
            "egress": [*_to(hub_endpoints(settings)), dns, *_to(allowed), {"to": internet}],
        },
    }


def hub_host(settings: Settings) -> str:
    """The hub's host name or address as pods reach it (for NO_PROXY)."""
    return urllib.parse.urlsplit(pod_hub_url(settings)).hostname or ""
