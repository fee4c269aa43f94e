"""Every kind of link binderlite knows, by name; a link (or spec) → its provider; banned repositories.

``PROVIDERS`` lists the provider classes in the order the landing page shows
them; each class describes itself (``RepoProvider``), so a new kind of link
is one class added here. ``banned_specs`` patterns are matched against the
spec as given, its percent-decoded form, and — once resolved — the
repository's URL and path, so neither escaping nor another provider
(``git/`` instead of ``gh/``) gets around them.
"""

from __future__ import annotations

import urllib.parse

from binderlite.errors import BannedSpecError, BinderliteError, SpecError
from binderlite.links.git import GistProvider, GitHubProvider, GitLabProvider, GitProvider
from binderlite.links.model import RepoProvider, ResolvedRepo
from binderlite.links.records import (
    CKANProvider,
    DataverseProvider,
    FigshareProvider,
    HydroshareProvider,
    ZenodoProvider,
)
from binderlite.settings import Settings

PROVIDERS: dict[str, type[RepoProvider]] = {
    cls.name: cls
    for cls in (
        GitHubProvider,
        GitLabProvider,
        GitProvider,
        GistProvider,
        ZenodoProvider,
        FigshareProvider,
        DataverseProvider,
        HydroshareProvider,
        CKANProvider,
    )
}


def _unquoted(text: str) -> str:
    """``text`` percent-decoded until it no longer changes (double escaping does not hide a name)."""
    for _ in range(5):
        decoded = urllib.parse.unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _banned(candidates: list[str], settings: Settings) -> bool:
    return any(pattern.match(text) for pattern in settings.banned_patterns for text in candidates)


def _refuse(spec: str) -> BannedSpecError:
    return BannedSpecError(
        f"Sorry, {spec} is not allowed to launch. Ask the administrators of this server if you think it should be."
    )


def check_resolved_not_banned(resolved: ResolvedRepo, settings: Settings) -> None:
    """Raise BannedSpecError if the repository a link resolved to matches ``banned_specs``."""
    if not settings.banned_patterns:
        return
    url = _unquoted(resolved.repo_url)
    parts = urllib.parse.urlsplit(url)
    path = parts.path.strip("/").removesuffix(".git")
    candidates = [url, f"{parts.hostname or ''}/{path}", path, _unquoted(resolved.spec)]
    if _banned(candidates, settings):
        raise _refuse(resolved.spec)


def get_provider(provider: str, spec: str, settings: Settings) -> RepoProvider:
    """The provider for a link's provider name and spec; raise SpecError/BannedSpecError."""
    if provider not in PROVIDERS:
        raise SpecError(f"Unknown provider {provider!r}; supported: {', '.join(PROVIDERS)}.")
    spec = spec.rstrip("/")
    if not spec:
        raise SpecError(f"The link names provider {provider!r} but no repository.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in spec):
        raise SpecError("The link contains control characters.")
    if _banned([spec, _unquoted(spec)], settings):
        raise _refuse(spec)
    return PROVIDERS[provider](spec, settings)


def parse_link(link: str, settings: Settings) -> RepoProvider:
    """The provider for a link path such as ``gh/org/repo/ref`` (a ``/v2/`` prefix is allowed)."""
    path = link.lstrip("/")
    if path.startswith("v2/"):
        path = path[3:]
    provider, sep, spec = path.partition("/")
    if not sep:
        raise SpecError(f'Link {link!r} is not of the form "<provider>/<spec>", e.g. "gh/org/repo/HEAD".')
    return get_provider(provider, spec, settings)


def describe_link(provider: str, spec: str, settings: Settings) -> tuple[str, str]:
    """(repository, ref) as a person reads them — a URL, not the escaped spec — without contacting anything."""
    try:
        parsed = get_provider(provider, spec, settings)
    except BinderliteError:  # the build stream says what is wrong with the link
        return f"{provider}/{spec}", ""
    return parsed.repo_url(), getattr(parsed, "unresolved_ref", "")


def repo_providers() -> list[dict]:
    """Every provider's display configuration, for the landing form and ``/api/repoproviders``."""
    return [cls.display_config() for cls in PROVIDERS.values()]


def provider_table() -> str:
    """The README's table of links, from the providers themselves."""
    rows = ["| link | meaning |", "|---|---|"]
    git_like = [cls for cls in PROVIDERS.values() if cls.link_pattern]
    rows += [f"| `{cls.link_pattern}` | {cls.documentation} |" for cls in git_like]
    records = [cls for cls in PROVIDERS.values() if not cls.link_pattern]
    names = ", ".join(f"`{cls.name}`" for cls in records[1:])
    rows.append(f"| `/v2/{records[0].name}/<DOI>`, {names} | data repositories (fetched in the sandbox) |")
    return "\n".join(rows) + "\n"
