"""API tokens for data-record hosts: which header each provider's API expects, and where it may go.

The secrets file's ``[[records]]`` entries name a host and a token. A token is
sent only in a request header (never a URL), only to the exact host (and port)
its entry names, only over https — plain http only to a loopback address with
``allow_local_repos`` (tests) — and never on a redirect to anywhere else: the
header is worked out afresh for every URL a redirect leads to. In the sandbox,
the content download gets the header through its environment (``environment``).

HydroShare is not supported: its API takes a user name and password (basic
auth) or OAuth, not a token in a header.
"""

from __future__ import annotations

import urllib.parse

from binderlite.credentials import RecordCredential, load_credentials
from binderlite.links.urlsafety import is_loopback
from binderlite.settings import Settings

# provider → (header name, value with {token} in it), as each API documents it
HEADERS = {
    "zenodo": ("Authorization", "Bearer {token}"),
    "figshare": ("Authorization", "token {token}"),
    "dataverse": ("X-Dataverse-key", "{token}"),
    "ckan": ("Authorization", "{token}"),
}


def origin(url: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of ``url``, lower-case; the port only when the URL names one."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "", ""
    host = (parts.hostname or "").lower()
    return parts.scheme.lower(), f"{host}:{port}" if host and port else host


def token_allowed(settings: Settings, url: str, credential: RecordCredential) -> bool:
    """May ``credential``'s token go with a request to ``url``? Its exact host, over https (or local http)."""
    scheme, host = origin(url)
    if host != credential.host:
        return False
    if scheme == "https":
        return True
    name = urllib.parse.urlsplit(url).hostname or ""
    return scheme == "http" and settings.allow_local_repos and is_loopback(name)


def credential_for(settings: Settings, provider: str, url: str) -> RecordCredential | None:
    """The secrets file's token for ``url``'s host, when ``provider`` takes tokens and it may go there."""
    if provider not in HEADERS:
        return None
    credential = load_credentials(settings).record_for(origin(url)[1])
    if credential is None or not token_allowed(settings, url, credential):
        return None
    return credential


def header(provider: str, credential: RecordCredential) -> dict[str, str]:
    """The request header that carries ``credential`` for ``provider``'s API."""
    name, value = HEADERS[provider]
    return {name: value.format(token=credential.token)}


def headers_for(settings: Settings, provider: str, url: str, credential: RecordCredential | None) -> dict[str, str]:
    """The token header for a request to ``url`` (``{}`` unless ``credential`` may go there)."""
    if credential is None or provider not in HEADERS or not token_allowed(settings, url, credential):
        return {}
    return header(provider, credential)


def environment(settings: Settings, provider: str, url: str) -> dict[str, str]:
    """The sandboxed download's environment for a private record at ``url`` (``{}`` when no token fits)."""
    credential = credential_for(settings, provider, url)
    if credential is None:
        return {}
    scheme, host = origin(url)
    ((name, value),) = header(provider, credential).items()
    return {
        "BINDERLITE_RECORD_ORIGIN": f"{scheme}://{host}",
        "BINDERLITE_RECORD_HEADER": name,
        "BINDERLITE_RECORD_VALUE": value,
    }
