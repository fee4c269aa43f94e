"""Where JupyterHub and its proxy live, and the secrets they share with binderlite.

The hub process (``jupyterhub_config.py``), the proxy and the launcher all ask
this module, so they always agree on addresses and tokens. The hub's address
defaults to the Docker bridge's gateway, looked up once per process.
"""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path

import docker.errors

from binderlite.dockerutil import docker_client
from binderlite.errors import DockerUnavailableError
from binderlite.hub.tokens import persistent_secret, service_token
from binderlite.settings import Settings

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")
DEFAULT_BRIDGE_GATEWAY = "172.17.0.1"


@functools.lru_cache(maxsize=8)
def _bridge_gateway(docker_host: str) -> str:
    """The gateway Docker reports (cached); raises when Docker does not answer, so that is not cached."""
    client = docker_client(Settings(docker_host=docker_host), timeout=10)
    try:
        configs = client.networks.get("bridge").attrs["IPAM"]["Config"] or []
    finally:
        client.close()
    for config in configs:
        if config.get("Gateway"):
            return config["Gateway"]
        if config.get("Subnet"):
            # Docker gives the bridge the first address of its subnet.
            return str(ipaddress.ip_network(config["Subnet"])[1])
    return DEFAULT_BRIDGE_GATEWAY


def docker_bridge_gateway(settings: Settings) -> str:
    """The host's address on Docker's default bridge (what containers reach the host on)."""
    try:
        return _bridge_gateway(settings.docker_host)
    except (DockerUnavailableError, docker.errors.DockerException):
        return DEFAULT_BRIDGE_GATEWAY


def hub_ip(settings: Settings) -> str:
    return settings.hub_ip or docker_bridge_gateway(settings)


def hub_url(settings: Settings, ip: str | None = None) -> str:
    """The hub's own URL, e.g. ``http://172.17.0.1:8081`` (no trailing slash)."""
    return f"http://{ip or hub_ip(settings)}:{settings.hub_port}"


def proxy_api_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.proxy_api_port}"


def public_url(settings: Settings) -> str:
    """Base URL users reach servers on, always ending in ``/``."""
    url = settings.public_url or f"http://{settings.proxy_ip}:{settings.proxy_port}/"
    return url if url.endswith("/") else url + "/"


def hub_api_token(settings: Settings) -> str:
    return settings.hub_api_token or service_token(settings.hub_dir)


def proxy_auth_token(settings: Settings) -> str:
    return settings.proxy_auth_token or persistent_secret(settings.hub_dir / "proxy_token")
