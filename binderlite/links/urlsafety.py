"""Which repository URLs binderlite may fetch from: an early, friendly refusal.

The enforcement is the kernel's (``binderlite.sandbox.netrules``), at connect
time, for every fetch; this check refuses the obvious cases before anything
runs, with a message, using the same list of internal networks.

A link names a URL that this server will contact. Unless ``allow_local_repos``
is on, URLs that reach inside this machine or its network are refused:
loopback, link-local (cloud metadata lives at 169.254.169.254), private and
other non-global addresses, ``file://``, git's ``ext::`` transport and local
paths. Only http, https, git and ssh are allowed at all.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from binderlite.errors import UnsafeURLError
from binderlite.sandbox.netrules import is_blocked

ALLOWED_SCHEMES = ("http", "https", "git", "ssh")
GIT_SCP_PATTERN = re.compile(r"^([\w\-.]+@[\w\-.]+):(?!//)(.+)$")


def normalize_git_url(url: str) -> str:
    """Turn scp-style ``git@host:path`` into ``ssh://git@host/path``; keep others as given."""
    match = GIT_SCP_PATTERN.match(url)
    if match:
        user_host, path = match.groups()
        return f"ssh://{user_host}/{path}"
    return url


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def check_repo_url(url: str, allow_local: bool = False) -> str:
    """Return the normalized URL if it may be fetched, else raise UnsafeURLError."""
    url = normalize_git_url(url.strip())
    lowered = url.lower()
    if lowered.startswith("ext::") or "::" in lowered.split("/", 1)[0]:
        raise UnsafeURLError(f"Repository URL {url!r} uses git's ext:: transport, which is never allowed.")
    if "\n" in url or "\r" in url or "\x00" in url:
        raise UnsafeURLError("Repository URL contains control characters.")
    if lowered.startswith("-"):
        raise UnsafeURLError(f"Repository URL {url!r} looks like a command-line option.")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsafeURLError(f"Repository URL {url!r} is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme == "file" or not scheme:
        if allow_local:
            return url
        raise UnsafeURLError(
            f"Repository URL {url!r} is a local path or file:// URL; these are refused "
            "unless allowed (the CLI's --allow-local, or the setting allow_local_repos for the web app)."
        )
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURLError(f"Repository URL {url!r} uses protocol {scheme!r}; allowed: {', '.join(ALLOWED_SCHEMES)}.")
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        raise UnsafeURLError(f"Repository URL {url!r} has no host name.")
    if allow_local:
        return url
    addresses = [host] if _is_ip(host) else _resolve(host)
    if not addresses:
        raise UnsafeURLError(f"Host {host!r} of repository URL {url!r} does not resolve.")
    internal = [a for a in addresses if is_blocked(a)]
    if internal:
        raise UnsafeURLError(
            f"Repository URL {url!r} points to an internal address ({internal[0]}); "
            "loopback, link-local and private addresses are refused unless allowed (the CLI's --allow-local, "
            "or the setting allow_local_repos for the web app)."
        )
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 or localhost (``host`` without a port)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
