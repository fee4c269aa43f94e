"""A local directory as a build source (only with ``allow_local_repos``)."""

from __future__ import annotations

import hashlib
import os
import subprocess

from binderlite.errors import UnsafeURLError
from binderlite.links.model import ResolvedRepo
from binderlite.settings import Settings


def resolve_local_dir(path: str, settings: Settings) -> ResolvedRepo:
    """A ResolvedRepo for a directory: its git HEAD commit, or a hash of its path and mtime."""
    if not settings.allow_local_repos:
        raise UnsafeURLError(
            f"{path} is a local directory; build it with `binderlite build --allow-local {path}` "
            "(local repositories are refused otherwise)."
        )
    path = os.path.abspath(path)
    proc = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True)
    if proc.returncode == 0:
        ref = proc.stdout.strip()
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain"], capture_output=True, text=True)
        if dirty.stdout.strip():
            ref = hashlib.sha256((ref + dirty.stdout).encode()).hexdigest()[:40]
    else:
        stamp = f"{path}:{os.stat(path).st_mtime_ns}"
        ref = hashlib.sha256(stamp.encode()).hexdigest()[:40]
    return ResolvedRepo(
        provider="local",
        spec=path,
        repo_url=path,
        unresolved_ref="HEAD",
        resolved_ref=ref,
        resolved_spec=path,
        ref_url=path,
        build_slug=path,
        content_provider="local",
    )
