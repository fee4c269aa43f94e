"""Whether a link's repository lives on this machine: offline, such a link resolves as always.

A repository served from this machine (``localhost``, a loopback address or
an address of one of its interfaces, or a local path / ``file://`` URL) needs
no network, so offline it is fetched as usual — but only when
``allow_local_repos`` is on, the rule for local repositories everywhere. The
answer comes from the link alone: a host NAME other than ``localhost`` is
never looked up (offline, a DNS question would hang or fail).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Callable

from binderlite.errors import BinderliteError
from binderlite.links.git import GitRefMixin, is_local_path
from binderlite.links.registry import get_provider
from binderlite.settings import Settings
from binderlite.workshop.classroom import interfaces


def interface_addresses() -> set[str]:
    """The IPv4 addresses of this machine's interfaces."""
    return {interface.address for interface in interfaces()}


def is_this_machine(host: str, addresses: Callable[[], set[str]] | None = None) -> bool:
    """True for ``localhost``, a loopback address or an address of this machine's interfaces (no DNS)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: never looked up here
    return address.is_loopback or str(address) in (addresses or interface_addresses)()


def repository_url(provider: str, spec: str, settings: Settings) -> str | None:
    """The git URL a link points at (None for records and specs that do not parse); no network."""
    try:
        found = get_provider(provider, spec, settings)
    except BinderliteError:
        return None
    return found.repo_url() if isinstance(found, GitRefMixin) else None


def is_local_repository(
    provider: str, spec: str, settings: Settings, addresses: Callable[[], set[str]] | None = None
) -> bool:
    """True when ``allow_local_repos`` is on and the link's repository is on this machine (see module)."""
    if not settings.allow_local_repos:
        return False
    url = repository_url(provider, spec, settings)
    if url is None:
        return False
    if is_local_path(url):
        return True
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return False
    return bool(host) and is_this_machine(host, addresses)
