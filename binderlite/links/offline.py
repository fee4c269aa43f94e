"""Whether binderlite runs without the internet (setting ``offline``), decided once a minute per process.

Offline, links resolve through the workshop's manifest and builds install
from its package mirror, so both ask here (``workshop/offline.py`` is the same
function for the workshop's own modules).

``auto`` is offline only where a workshop is prepared or imported (its
manifest exists) and the package index's host does not resolve: a laptop in
a room with no network. The DNS question has a short deadline, so a laptop
whose resolver never answers is offline within seconds, not after a timeout.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse

from binderlite.settings import Settings

DEFAULT_INDEX_HOST = "pypi.org"
MANIFEST_NAME = "manifest.json"  # workshop/manifest.py writes it in the workshop folder (a test keeps both)
DNS_DEADLINE = 2.0
RECHECK_SECONDS = 60.0

_cache: dict[tuple[str, str, str], tuple[float, bool]] = {}


def index_host(settings: Settings) -> str:
    """The host builds install Python packages from when online."""
    return urllib.parse.urlsplit(settings.package_index_url).hostname or DEFAULT_INDEX_HOST


def resolves(host: str, deadline: float = DNS_DEADLINE) -> bool:
    """True if ``host`` resolves within ``deadline`` seconds (the lookup runs on a thread it does not wait for)."""
    answer: list[bool] = []

    def ask() -> None:
        try:
            socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(deadline)
    return bool(answer and answer[0])


def is_offline(settings: Settings) -> bool:
    """True when binderlite should act offline (see the module docstring)."""
    if settings.offline != "auto":
        return settings.offline == "yes"
    if not (settings.workshop_dir / MANIFEST_NAME).exists():
        return False
    key = (settings.state_dir, settings.offline, index_host(settings))
    now = time.monotonic()
    cached = _cache.get(key)
    if cached and now - cached[0] < RECHECK_SECONDS:
        return cached[1]
    offline = not resolves(index_host(settings))
    _cache[key] = (now, offline)
    return offline
