"""Repository providers: a link's provider + spec → a repo URL and an immutable ref.

The spec formats are BinderHub's (``gh/<org>/<repo>/<ref>``,
``gl/<escaped namespace>/<ref>``, ``git/<escaped URL>/<ref>``,
``gist/<user>/<id>[/<ref>]`` and the DOI providers). Git refs are resolved
with ``git ls-remote``, which works for any git host and will carry per-host
credentials; DOI records are resolved through their public APIs and their
content is fetched by repo2docker's own content providers.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass, field

from binderlite.errors import BannedSpecError, RefNotFoundError, SpecError
from binderlite.imagenames import image_name
from binderlite.settings import Settings
from binderlite.urlsafety import check_repo_url, normalize_git_url

SHA1 = re.compile(r"^[0-9a-f]{40}\Z")
NAME_PART = re.compile(r"^[A-Za-z0-9_.\-]+\Z")
GIT_TIMEOUT = 60
HTTP_TIMEOUT = 20


@dataclass
class ResolvedRepo:
    """Everything the builder and launcher need to know about one resolved link."""

    provider: str
    spec: str
    repo_url: str
    unresolved_ref: str
    resolved_ref: str
    resolved_spec: str
    ref_url: str
    build_slug: str
    content_provider: str = "git"
    notes: list[str] = field(default_factory=list)

    def image(self, prefix: str) -> str:
        return image_name(prefix, self.build_slug, self.resolved_ref)

    @property
    def binder_request(self) -> str:
        return f"v2/{self.provider}/{self.spec}"

    @property
    def binder_persistent_request(self) -> str:
        return f"v2/{self.provider}/{self.resolved_spec}"


class RepoProvider:
    """Base class: parse the spec in ``__init__`` (raise SpecError), resolve on demand."""

    name = ""
    display_name = ""

    def __init__(self, spec: str, settings: Settings):
        self.spec = spec
        self.settings = settings

    def repo_url(self) -> str:
        raise NotImplementedError

    def resolve(self) -> ResolvedRepo:
        raise NotImplementedError


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
    env["GIT_ALLOW_PROTOCOL"] = "http:https:git:ssh:file"
    return env


def ls_remote(url: str, ref: str) -> str | None:
    """The commit SHA ``ref`` names at ``url``, or None if the remote has no such ref."""
    patterns = [ref] if ref == "HEAD" else [ref, f"{ref}^{{}}"]
    try:
        proc = subprocess.run(
            ["git", "ls-remote", "--", url, *patterns],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env=_git_env(),
        )
    except subprocess.TimeoutExpired:
        raise RefNotFoundError(f"git ls-remote of {url} timed out after {GIT_TIMEOUT} s.") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise RefNotFoundError(f"Could not read the repository {url}: {reason}")
    refs: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    preferred = [
        f"{ref}^{{}}",
        ref,
        f"refs/heads/{ref}",
        f"refs/tags/{ref}^{{}}",
        f"refs/tags/{ref}",
    ]
    for name in preferred:
        if name in refs and SHA1.match(refs[name]):
            return refs[name]
    return None


class GitRefMixin:
    """Resolve a git ref with ls-remote (a 40-hex SHA is taken as it is) into a ResolvedRepo.

    Subclasses say what differs: ``resolved_spec``, ``ref_url`` and ``build_slug``
    (BinderHub's, per provider), and which ref to ask for.
    """

    retry_head = False

    def ref_to_resolve(self) -> str:
        return self.unresolved_ref

    def resolve(self) -> ResolvedRepo:
        url = check_repo_url(self.repo_url(), self.settings.allow_local_repos)
        sha, notes = self.resolve_git_ref(url, self.ref_to_resolve(), retry_head=self.retry_head)
        return ResolvedRepo(
            provider=self.name,
            spec=self.spec,
            repo_url=url,
            unresolved_ref=self.unresolved_ref,
            resolved_ref=sha,
            resolved_spec=self.resolved_spec(sha),
            ref_url=self.ref_url(url, sha),
            build_slug=self.build_slug(url),
            notes=notes,
        )

    def resolve_git_ref(self, url: str, ref: str, retry_head: bool = False) -> tuple[str, list[str]]:
        if not ref or ref.startswith("-") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref):
            raise SpecError(f"{ref!r} is not a valid git ref (branch, tag or commit).")
        if SHA1.match(ref):
            return ref, []
        sha = ls_remote(url, ref)
        if sha is None and retry_head and ref in ("master", "main"):
            sha = ls_remote(url, "HEAD")
            if sha is not None:
                return sha, [f"No {ref} branch found; using the default branch (HEAD) instead.\n"]
        if sha is None:
            raise RefNotFoundError(f"Could not resolve ref {ref!r} in {url}: no such branch, tag or commit.")
        return sha, []


class GitHubProvider(GitRefMixin, RepoProvider):
    name = "gh"
    display_name = "GitHub"
    retry_head = True

    def __init__(self, spec: str, settings: Settings):
        super().__init__(spec, settings)
        parts = spec.split("/", 2)
        if len(parts) != 3 or not all(parts):
            hint = f' Did you mean "{spec}/HEAD"?' if len(parts) == 2 and all(parts) else ""
            raise SpecError(f'Spec is not of the form "user/repo/ref", provided: "{spec}".{hint}')
        self.user, repo, self.unresolved_ref = parts
        self.repo = repo[:-4] if repo.endswith(".git") else repo
        for part in (self.user, self.repo):
            if not NAME_PART.match(part) or part in (".", ".."):
                raise SpecError(f"{part!r} is not a valid GitHub user or repository name.")

    def repo_url(self) -> str:
        return f"{self.settings.github_host.rstrip('/')}/{self.user}/{self.repo}"

    def resolved_spec(self, sha: str) -> str:
        return f"{self.user}/{self.repo}/{sha}"

    def ref_url(self, url: str, sha: str) -> str:
        return f"{url}/tree/{sha}"

    def build_slug(self, url: str) -> str:
        return f"{self.user}-{self.repo}"


class GitLabProvider(GitRefMixin, RepoProvider):
    name = "gl"
    display_name = "GitLab.com"

    def __init__(self, spec: str, settings: Settings):
        super().__init__(spec, settings)
        quoted, sep, ref = spec.partition("/")
        if not sep or not quoted or not ref:
            raise SpecError(f'Spec is not of the form "<url-escaped namespace>/<ref>", provided: "{spec}".')
        self.quoted_namespace = quoted
        self.namespace = urllib.parse.unquote(quoted)
        self.unresolved_ref = urllib.parse.unquote(ref)
        parts = self.namespace.split("/")
        if len(parts) < 2 or not all(NAME_PART.match(p) and p not in (".", "..") for p in parts):
            raise SpecError(f"{self.namespace!r} is not a valid GitLab namespace (group/project).")

    def repo_url(self) -> str:
        return f"{self.settings.gitlab_host.rstrip('/')}/{self.namespace}.git"

    def resolved_spec(self, sha: str) -> str:
        return f"{self.quoted_namespace}/{sha}"

    def ref_url(self, url: str, sha: str) -> str:
        return f"{self.settings.gitlab_host.rstrip('/')}/{self.namespace}/tree/{sha}"

    def build_slug(self, url: str) -> str:
        return "-".join(p.replace("-", "_-") for p in self.namespace.split("/"))


class GitProvider(GitRefMixin, RepoProvider):
    name = "git"
    display_name = "Git repository"

    def __init__(self, spec: str, settings: Settings):
        super().__init__(spec, settings)
        escaped, sep, ref = spec.partition("/")
        if not sep or not escaped or not ref:
            raise SpecError(f'Spec is not of the form "<url-escaped clone URL>/<ref>", provided: "{spec}".')
        self.escaped_url = escaped
        self.url = normalize_git_url(urllib.parse.unquote(escaped))
        self.unresolved_ref = urllib.parse.unquote(ref)

    def repo_url(self) -> str:
        return self.url

    def resolved_spec(self, sha: str) -> str:
        return f"{self.escaped_url}/{sha}"

    def ref_url(self, url: str, sha: str) -> str:
        return url

    def build_slug(self, url: str) -> str:
        return url


class GistProvider(GitRefMixin, RepoProvider):
    name = "gist"
    display_name = "Gist"

    def __init__(self, spec: str, settings: Settings):
        super().__init__(spec, settings)
        parts = spec.split("/")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise SpecError(f'Spec is not of the form "user/gist-id[/ref]", provided: "{spec}".')
        self.user, self.gist_id = parts[0], parts[1]
        self.unresolved_ref = parts[2] if len(parts) == 3 and parts[2] else "HEAD"
        if not NAME_PART.match(self.user) or self.user in (".", "..") or not re.match(r"^[0-9a-fA-F]+\Z", self.gist_id):
            raise SpecError(f"{spec!r} does not name a gist (user/hexadecimal-id).")

    def repo_url(self) -> str:
        return f"https://gist.github.com/{self.user}/{self.gist_id}.git"

    def ref_to_resolve(self) -> str:
        return "HEAD" if self.unresolved_ref in ("master", "main") else self.unresolved_ref

    def resolved_spec(self, sha: str) -> str:
        return f"{self.user}/{self.gist_id}/{sha}"

    def ref_url(self, url: str, sha: str) -> str:
        return f"https://gist.github.com/{self.user}/{self.gist_id}/{sha}"

    def build_slug(self, url: str) -> str:
        return self.gist_id


# ---- the provider registry ------------------------------------------
# The DOI providers (binderlite.doiproviders) add themselves to PROVIDERS
# when imported; the import at the end of this module makes sure they are.

from binderlite.errors import ConfigError  # noqa: E402

PROVIDERS: dict[str, type[RepoProvider]] = {
    "gh": GitHubProvider,
    "gl": GitLabProvider,
    "git": GitProvider,
    "gist": GistProvider,
}


def _banned(spec: str, banned_specs: str) -> bool:
    for pattern in (p.strip() for p in banned_specs.split(",")):
        if not pattern:
            continue
        try:
            if re.match(pattern, spec, re.IGNORECASE):
                return True
        except re.error as exc:
            raise ConfigError(
                f"banned_specs entry {pattern!r} is not a valid regular expression ({exc}); fix the setting."
            ) from None
    return False


def get_provider(provider: str, spec: str, settings: Settings) -> RepoProvider:
    """The provider for a link's provider name and spec; raise SpecError/BannedSpecError."""
    if provider not in PROVIDERS:
        raise SpecError(f"Unknown provider {provider!r}; supported: {', '.join(PROVIDERS)}.")
    spec = spec.rstrip("/")
    if not spec:
        raise SpecError(f"The link names provider {provider!r} but no repository.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in spec):
        raise SpecError("The link contains control characters.")
    if _banned(spec, settings.banned_specs):
        raise BannedSpecError(
            f"Sorry, {spec} is not allowed to launch. Ask the administrators of this server if you think it should be."
        )
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


import binderlite.doiproviders  # noqa: E402, F401  (registers the DOI providers)
