"""Names the launcher gives: a temporary user per anonymous launch, a named server per repository, pool users."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from urllib.parse import urlparse

USERNAME_CHARS = string.ascii_lowercase + string.digits
NAME_LIMIT = 30  # JupyterHub's limit on new server names (a "safe slug": a letter first, then a-z, 0-9, -)


def _with_scheme(repo_url: str) -> str:
    return repo_url if "://" in repo_url else "http://" + repo_url


def repo_slug(repo_url: str) -> str:
    """The repository's path in lower-case letters, digits and ``-`` (``Org/My_Repo.git`` → ``org-my-repo``)."""
    path = urlparse(_with_scheme(repo_url)).path.strip("/").removesuffix(".git")
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def username_for(repo_url: str) -> str:
    """BinderHub's temporary user name: the repo path, ≤32 chars, ``-`` and 8 random chars."""
    prefix = repo_slug(repo_url)
    if len(prefix) > 32:
        prefix = f"{prefix[:15]}-{prefix[-16:]}".strip("-")
    suffix = "".join(secrets.choice(USERNAME_CHARS) for _ in range(8))
    return f"{prefix or 'binder'}-{suffix}"


def server_name_for(repo_url: str) -> str:
    """A user's server name for a repository: readable, the same for the same repository, a name JupyterHub takes."""
    slug = repo_slug(repo_url)[-(NAME_LIMIT - 10) :]
    slug = re.sub(r"^[^a-z]+", "", slug).strip("-")  # starts with a letter
    digest = hashlib.sha256(_with_scheme(repo_url).encode()).hexdigest()[:8]
    return f"{slug or 'repo'}-{digest}"


def pool_username(source: str) -> str:
    """A warm pool server's user: ``pool-``, the repository's (or image's) slug, ``-`` and 6 random chars."""
    slug = repo_slug(source)[-20:].strip("-")
    suffix = "".join(secrets.choice(USERNAME_CHARS) for _ in range(6))
    return f"pool-{slug or 'image'}-{suffix}"
