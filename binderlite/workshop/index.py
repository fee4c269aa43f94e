"""The workshop's local package index: when builds use it, and where it answers.

pypiserver serves the mirror folder (``mirror.mirror_dir``) as a PEP 503
simple index on the host's address on the builds' Docker network, port
``workshop_index_port`` (the ``index`` service of ``services/table.py``).
Builds use it instead of the configured package index when a mirror exists
and ``workshop_index`` is ``always``, or ``offline`` (the default) and
binderlite runs offline (``offline.is_offline``); with ``never`` they never do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import docker.errors

from binderlite.dockerutil import docker_client
from binderlite.errors import DockerUnavailableError
from binderlite.sandbox.dockernet import bridge_address, ensure_network
from binderlite.settings import Settings
from binderlite.workshop.mirror import mirror_dir
from binderlite.workshop.offline import is_offline


def mirror_exists(settings: Settings) -> bool:
    """True when the mirror folder holds at least one distribution."""
    folder = mirror_dir(settings)
    return folder.is_dir() and any(p.suffix in (".whl", ".gz", ".zip") for p in folder.iterdir())


def index_in_use(workshop_index: str, mirror: bool, offline: Callable[[], bool]) -> bool:
    """The decision table: ``always`` and ``offline`` need a mirror; ``offline`` asks ``offline()`` last."""
    if workshop_index == "never" or not mirror:
        return False
    return workshop_index == "always" or offline()


@functools.lru_cache(maxsize=8)
def _gateway(docker_host: str, network: str) -> str:
    client = docker_client(Settings(docker_host=docker_host), timeout=10)
    try:
        return ensure_network(client, network)
    finally:
        client.close()


def build_network_gateway(settings: Settings) -> str:
    """The host's address on the builds' network: where build steps reach the index."""
    try:
        return _gateway(settings.docker_host, settings.build_network)
    except (DockerUnavailableError, docker.errors.DockerException):
        found = bridge_address(settings.build_network)
        if found is None:
            raise
        return found


def index_url(settings: Settings) -> str:
    """The index's simple URL, e.g. ``http://172.19.0.1:8587/simple/``."""
    return f"http://{build_network_gateway(settings)}:{settings.workshop_index_port}/simple/"


def workshop_index_url(settings: Settings) -> str | None:
    """The simple-index URL builds use now, or None when they use the configured package index."""
    if index_in_use(settings.workshop_index, mirror_exists(settings), lambda: is_offline(settings)):
        return index_url(settings)
    return None
