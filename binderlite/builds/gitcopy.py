"""Bare copies of git repositories kept on this machine (a prepared workshop's), and whether one has a commit.

``binderlite workshop prepare`` clones each prepared repository into
``copies_dir`` (``<workshop_dir>/repos``), named from its URL by
``copy_name``. A build whose repository has a copy holding the commit
fetches from the copy instead of the network (``builds.fetch``): commits do
not change, so the result is the same, and it works with no network at all.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import urllib.parse
from pathlib import Path

from binderlite.settings import Settings

SHA1 = re.compile(r"^[0-9a-f]{40}\Z")
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# git reading binderlite's own copy: no configuration but the copy's, no prompts, no protocol at all
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def copies_dir(settings: Settings) -> Path:
    """Where the bare copies live: ``<workshop_dir>/repos``."""
    return settings.workshop_dir / "repos"


def copy_name(repo_url: str) -> str:
    """A folder name for ``repo_url``'s copy: readable (host and path) and unique (a hash of the URL)."""
    parts = urllib.parse.urlsplit(repo_url)
    readable = UNSAFE.sub("-", f"{parts.hostname or ''}{parts.path}").strip("-.").removesuffix(".git")[-60:]
    digest = hashlib.sha256(repo_url.encode()).hexdigest()[:12]
    return f"{readable.strip('-.') or 'repo'}-{digest}.git"


def copy_path(settings: Settings, repo_url: str) -> Path:
    return copies_dir(settings) / copy_name(repo_url)


def has_commit(copy: Path, commit: str) -> bool:
    """True if the bare repository ``copy`` holds ``commit`` (a full SHA)."""
    if not SHA1.match(commit) or not (copy / "objects").is_dir():
        return False
    proc = subprocess.run(
        ["git", f"--git-dir={copy}", "cat-file", "-e", f"{commit}^{{commit}}"],
        env=GIT_ENV,
        capture_output=True,
        timeout=60,
    )
    return proc.returncode == 0


def copy_with(settings: Settings, repo_url: str, commit: str) -> Path | None:
    """The copy of ``repo_url`` if there is one and it holds ``commit``; else None."""
    path = copy_path(settings, repo_url)
    return path if has_commit(path, commit) else None
