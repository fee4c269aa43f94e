"""Which package index a build installs from: the configured one, or the workshop's local index.

The workshop's index (pypiserver serving ``<workshop_dir>/mirror``, see
``workshop/index.py`` and the ``index`` service) answers on the host's
address on the builds' Docker network, port ``workshop_index_port``. Builds
use it when the mirror holds something and ``workshop_index`` is ``always``,
or ``offline`` (the default) and binderlite runs offline
(``links/offline.py``); with ``never`` they never do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from binderlite.errors import DockerUnavailableError
from binderlite.links.offline import is_offline
from binderlite.sandbox.dockernet import network_gateway
from binderlite.settings import Settings

MIRROR_NAME = "mirror"
DISTRIBUTION_SUFFIXES = (".whl", ".gz", ".zip")


def mirror_path(settings: Settings) -> Path:
    """The folder of the workshop's package mirror."""
    return settings.workshop_dir / MIRROR_NAME


def mirror_exists(settings: Settings) -> bool:
    """True when the mirror folder holds at least one distribution."""
    folder = mirror_path(settings)
    return folder.is_dir() and any(p.name.endswith(DISTRIBUTION_SUFFIXES) for p in folder.iterdir())


def index_in_use(workshop_index: str, mirror: bool, offline: Callable[[], bool]) -> bool:
    """The decision table: ``always`` and ``offline`` need a mirror; ``offline`` asks ``offline()`` last."""
    if workshop_index == "never" or not mirror:
        return False
    return workshop_index == "always" or offline()


def build_network_gateway(settings: Settings) -> str:
    """The host's address on the builds' network: where build steps reach the index."""
    found = network_gateway(settings, settings.build_network)
    if found is None:
        raise DockerUnavailableError(f"Docker does not answer, and there is no {settings.build_network} bridge yet.")
    return found


def index_url(settings: Settings) -> str:
    """The index's simple URL, e.g. ``http://172.19.0.1:8587/simple/``."""
    return f"http://{build_network_gateway(settings)}:{settings.workshop_index_port}/simple/"


def workshop_index_url(settings: Settings) -> str | None:
    """The simple-index URL builds use now, or None when they use the configured package index."""
    if index_in_use(settings.workshop_index, mirror_exists(settings), lambda: is_offline(settings)):
        return index_url(settings)
    return None


def carried_ca_bundle(settings: Settings) -> Path:
    """Where an imported workshop keeps the CA bundle its stage images were made with."""
    return settings.workshop_dir / "ca-bundle.crt"


def build_ca_bundle(settings: Settings) -> str:
    """The CA bundle builds copy in: offline, the workshop's carried one, so the carried stages are found.

    A shared stage's name is a hash of what goes into it, the CA bundle too;
    a laptop's own bundle differs from the preparing machine's, and offline
    there is nowhere to remake a stage from (nor any TLS to check).
    """
    carried = carried_ca_bundle(settings)
    if carried.is_file() and is_offline(settings):
        return str(carried)
    return settings.ca_bundle
