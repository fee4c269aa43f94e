"""Where JupyterHub and its proxy live, and the secrets they share with binderlite.

The hub process (``jupyterhub_config.py``), the proxy and the launcher all ask
this module, so they always agree on addresses and tokens. The hub's address
defaults to the host's address on the servers' Docker network (its gateway),
the one address of this host that servers may reach; it is looked up once per
process (the network is created if missing, so the address exists).
"""

from __future__ import annotations

from pathlib import Path

from binderlite.hub.tokens import SERVICE_NAME, persistent_secret, service_token
from binderlite.sandbox.dockernet import network_gateway
from binderlite.settings import Settings

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")
DEFAULT_BRIDGE_GATEWAY = "172.17.0.1"


def server_network_gateway(settings: Settings) -> str:
    """The host's address on the servers' network (what servers reach the hub on).

    When Docker does not answer, the kernel still knows the address of the
    network's bridge; failing that, Docker's usual default bridge address.
    """
    return network_gateway(settings, settings.server_network) or DEFAULT_BRIDGE_GATEWAY


def hub_ip(settings: Settings) -> str:
    return settings.hub_ip or server_network_gateway(settings)


def hub_url(settings: Settings, ip: str | None = None) -> str:
    """The hub's own URL, e.g. ``http://172.18.0.1:8081`` (no trailing slash)."""
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


def oauth_client_id() -> str:
    """The web app's OAuth client id at the hub (authenticated mode; BinderHub's ``service-<name>``)."""
    return "service-" + SERVICE_NAME


def oauth_redirect_uri(settings: Settings) -> str:
    """Where the hub sends a signed-in browser back to: ``<binder_launch_host>oauth_callback``."""
    return settings.binder_launch_host.rstrip("/") + "/oauth_callback"
