"""Asks the git forge a user signed in through whether that user may read a repository.

The forge is the one the hub signs users in with (``authenticator`` = ``gitlab``
or ``github``, at ``oauth_url``). Its answer, with the user's own token:

- GitLab: ``GET <oauth_url>/api/v4/projects/<url-encoded path>``
- GitHub: ``GET https://api.github.com/repos/<owner>/<repo>`` (GitHub Enterprise:
  ``<oauth_url>/api/v3/repos/<owner>/<repo>``)

200 means the user may read it; 401, 403 and 404 mean they may not (a forge
answers 404 for a private repository to those who cannot see it). The token
goes in the ``Authorization`` header only: never in a URL, a log line or an error.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass

import requests

from binderlite.errors import FetchError
from binderlite.hub.identity import SignedInUser
from binderlite.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds: a launch waits for this answer
DEFAULT_URLS = {"gitlab": "https://gitlab.com", "github": "https://github.com"}
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class RepoPlace:
    """Where a repository lives: its host (``name`` or ``name:port``, lower case) and its path on the host."""

    scheme: str
    host: str
    path: str


def user_can_read(settings: Settings, user: SignedInUser, repo_url: str) -> bool | None:
    """True/False from the forge with the user's own token; None when the forge has no say.

    The forge has no say when the user did not sign in through a forge, or the
    repository is on another host. An unreachable forge raises FetchError.
    """
    if user.forge not in DEFAULT_URLS or not user.forge_token:
        return None
    base = (settings.oauth_url or DEFAULT_URLS[user.forge]).rstrip("/")
    forge, repo = repo_place(base), repo_place(repo_url)
    if forge is None or repo is None or not same_host(forge, repo):
        return None
    path = repo.path
    if forge.path:  # a forge served below a path (https://host/gitlab)
        if not path.startswith(forge.path + "/"):
            return None
        path = path[len(forge.path) + 1 :]
    api = api_url(user.forge, base, forge, path)
    if api is None:
        return None
    return _ask(api, user, base, path)


def repo_place(url: str) -> RepoPlace | None:
    """Host and path of an http(s)/ssh URL or an scp-like ``git@host:path``; None for anything else."""
    url = url.strip()
    if "://" not in url and ":" in url and "@" in url.split(":", 1)[0]:  # git@host:group/project.git
        userhost, path = url.split(":", 1)
        url = f"ssh://{userhost}/{path}"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "ssh", "git+ssh") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port and port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    path = urllib.parse.unquote(parts.path).strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return RepoPlace(parts.scheme, host, path)


def same_host(forge: RepoPlace, repo: RepoPlace) -> bool:
    """The repository is on the forge: the same host and port over HTTP(S), the same host name over SSH."""
    if repo.scheme in ("ssh", "git+ssh"):
        return repo.host.split(":")[0] == forge.host.split(":")[0]
    return repo.host == forge.host


def api_url(forge_kind: str, base: str, forge: RepoPlace, path: str) -> str | None:
    """The forge's API URL for the repository at ``path`` (None when the path cannot name one)."""
    if not path or any(part in ("", ".", "..") for part in path.split("/")):
        return None
    if forge_kind == "gitlab":
        return f"{base}/api/v4/projects/{urllib.parse.quote(path, safe='')}"
    owner_repo = path.split("/")
    if len(owner_repo) != 2:
        return None
    owner, name = (urllib.parse.quote(p, safe="") for p in owner_repo)
    api = "https://api.github.com" if forge.host == "github.com" else f"{base}/api/v3"
    return f"{api}/repos/{owner}/{name}"


def _ask(api: str, user: SignedInUser, base: str, path: str) -> bool:
    headers = {"Authorization": f"Bearer {user.forge_token}", "Accept": "application/json"}
    try:
        answer = requests.get(api, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        # the exception's text is not used: only its kind, so nothing from the request is repeated
        raise FetchError(
            f"The git forge at {base} could not be reached to check access to {path} ({type(exc).__name__}); "
            "try again later."
        ) from None
    if answer.status_code == 200:
        return True
    if answer.status_code == 429 or answer.headers.get("X-RateLimit-Remaining") == "0":
        raise FetchError(f"The git forge at {base} is rate-limiting binderlite's questions; try again in a minute.")
    if answer.status_code in (401, 403, 404):
        if answer.status_code == 401:
            log.warning(
                "The forge at %s refused %s's token (expired or revoked?): they may sign in again", base, user.name
            )
        log.info("The forge at %s says %s may not read %s (HTTP %d)", base, user.name, path, answer.status_code)
        return False
    raise FetchError(
        f"The git forge at {base} answered HTTP {answer.status_code} when asked about {path}; try again later."
    )
