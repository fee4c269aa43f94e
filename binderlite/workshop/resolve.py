"""Resolving a link where it may be offline: through the workshop's manifest then, else as always.

Online, this is ``links.resolve``. Offline (``workshop.offline``), a link
resolves to the commit it was prepared at, with a note the build log shows;
a link that was not prepared fails at once — no DNS question, no git — with
a message saying so and where to see what was prepared. The exception is a
repository on this machine itself (``workshop.localrepo``, with
``allow_local_repos``): it needs no network, so it resolves as always.
"""

from __future__ import annotations

import os
import urllib.parse

from binderlite import links
from binderlite.errors import BadInputError
from binderlite.links.registry import check_resolved_not_banned
from binderlite.settings import Settings
from binderlite.workshop.linksfile import split_link
from binderlite.workshop.localrepo import is_local_repository
from binderlite.workshop.manifest import load_manifest
from binderlite.workshop.offline import is_offline

LIST_HINT = "the instructor sees the prepared links with `binderlite workshop list`"


class NotPreparedError(BadInputError):
    """Offline, a link that the workshop did not prepare (404: there is nothing to build it from here)."""

    status = 404


def prepared(provider: str, spec: str, settings: Settings) -> links.ResolvedRepo:
    """The prepared version of ``provider``/``spec`` from the manifest; NotPreparedError if there is none.

    A link that was not prepared but whose repository is on this machine resolves as always (git asks the
    local server)."""
    manifest = load_manifest(settings)
    entry = manifest.lookup(provider, spec) if manifest is not None else None
    if entry is None and is_local_repository(provider, spec, settings):
        return links.resolve(provider, spec, settings)
    if manifest is None:
        raise NotPreparedError(
            f"binderlite is offline and no workshop is prepared here, so {provider}/{spec} cannot be fetched. "
            "Prepare one while online (`binderlite workshop prepare LINKS_FILE`) or import a bundle."
        )
    if entry is None:
        raise NotPreparedError(
            f"{provider}/{spec} was not prepared for this workshop, and binderlite is offline, "
            f"so it cannot be fetched (only repositories served from this machine can be); {LIST_HINT}."
        )
    resolved = entry.resolved()
    check_resolved_not_banned(resolved, settings)
    return resolved


def resolve(provider: str, spec: str, settings: Settings) -> links.ResolvedRepo:
    """``links.resolve``, or offline the prepared version (see the module docstring)."""
    if is_offline(settings):
        return prepared(provider, spec, settings)
    return links.resolve(provider, spec, settings)


def resolve_link(link: str, settings: Settings, ref: str = "HEAD") -> links.ResolvedRepo:
    """``links.resolve_link`` (a link path, a git URL at ``ref``, a local directory), offline through the manifest."""
    if os.path.isdir(link) or not is_offline(settings):
        return links.resolve_link(link, settings, ref)
    if "://" in link or link.startswith("git@"):  # a git URL, as links.resolve_link reads it
        return prepared("git", urllib.parse.quote(link, safe="") + "/" + urllib.parse.quote(ref, safe=""), settings)
    provider, spec = split_link(link)
    return prepared(provider, spec, settings)
