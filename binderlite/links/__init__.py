"""A link becomes a repository at an immutable version: ``resolve_link`` is the one entry.

``registry`` knows every kind of link (``git``: gh, gl, git, gist;
``records``: zenodo, figshare, dataverse, hydroshare, ckan) and the banned
repositories; ``model`` is what a resolved link is (``ResolvedRepo``, which
also names its image as BinderHub does, ``imagenames``); ``local`` serves the
CLI's local directories; ``urlsafety`` gives early, friendly refusals (the
enforcement is the sandbox's, at connect time).
"""

from __future__ import annotations

import os
import urllib.parse

from binderlite.links.git import GitProvider
from binderlite.links.local import resolve_local_dir
from binderlite.links.model import ResolvedRepo
from binderlite.links.registry import check_resolved_not_banned, get_provider, parse_link
from binderlite.settings import Settings

__all__ = ["ResolvedRepo", "get_provider", "parse_link", "resolve", "resolve_link"]


def resolve(provider: str, spec: str, settings: Settings) -> ResolvedRepo:
    """Resolve a BinderHub provider name and spec (as in ``/v2/<provider>/<spec>``)."""
    resolved = get_provider(provider, spec, settings).resolve()
    check_resolved_not_banned(resolved, settings)
    return resolved


def resolve_link(link: str, settings: Settings, ref: str = "HEAD") -> ResolvedRepo:
    """Resolve a link path (``gh/org/repo/ref``), a git URL (at ``ref``) or — if allowed — a local directory."""
    if os.path.isdir(link):
        return resolve_local_dir(link, settings)
    if "://" in link or link.startswith("git@"):
        spec = urllib.parse.quote(link, safe="") + "/" + urllib.parse.quote(ref, safe="")
        resolved = GitProvider(spec, settings).resolve()
    else:
        resolved = parse_link(link, settings).resolve()
    check_resolved_not_banned(resolved, settings)
    return resolved
