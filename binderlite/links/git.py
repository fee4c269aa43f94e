"""Git links (``gh``, ``gl``, ``git``, ``gist``): a spec → a repo URL and the commit its ref names.

The spec formats are BinderHub's (``gh/<org>/<repo>/<ref>``,
``gl/<escaped namespace>/<ref>``, ``git/<escaped URL>/<ref>``,
``gist/<user>/<id>[/<ref>]``). Refs are resolved with ``git ls-remote``,
which works for any git host, run in the sandbox like every contact with a
host a link names (``binderlite.sandbox``): the kernel refuses its
connections to internal addresses, whatever redirects or DNS say. A 40-hex
ref is taken as it is; the fetch later meets the same rules.

``git_environment`` is the one description of how binderlite runs git
(no configuration, prompts or credentials of the host); ``credential_environment``
(``gitcredentials``) adds the secrets file's credential for the URL's host to a
``private`` call. Resolution asks anonymously first and, only when that is refused
and the host has a credential, again with it: the repository is then ``private``
(its image gets a keyed name, and the fetch uses the credential too).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

from binderlite.errors import FetchError, RefNotFoundError, SpecError
from binderlite.links.gitcredentials import check_no_userinfo, credential_for, url_host
from binderlite.links.gitcredentials import credential_environment as host_credential_environment
from binderlite.links.model import LinkForm, RepoProvider, ResolvedRepo
from binderlite.links.urlsafety import check_repo_url, normalize_git_url
from binderlite.sandbox import netrules, process
from binderlite.settings import Settings, proxy_environment

log = logging.getLogger("binderlite.links.git")  # git's own words go to the administrator's log only
SHA1 = re.compile(r"^[0-9a-f]{40}\Z")
NAME_PART = re.compile(r"^[A-Za-z0-9_.\-]+\Z")
GIT_TIMEOUT = 60
NOT_PUBLIC = "it does not exist, or is not public"
GIT_PROTOCOLS = "http:https:git:ssh"
SSH_COMMAND = "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/dev/null"


def git_environment(settings: Settings, url: str, allow_local: bool) -> dict[str, str]:
    """git with no system or user configuration, no prompts, only network protocols (and ``file`` if local)."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_ALLOW_PROTOCOL": GIT_PROTOCOLS + (":file" if allow_local else ""),
        "GIT_SSH_COMMAND": SSH_COMMAND,
        "GIT_LFS_SKIP_SMUDGE": "1",
        **proxy_environment(settings),
    }
    if settings.ca_bundle:
        env["GIT_SSL_CAINFO"] = settings.ca_bundle
    return env


def git_failure_reason(output: str) -> str:
    """A reason users may see, from git's output (which is never shown: it could map internal hosts)."""
    text = output.lower()
    if "could not resolve host" in text:
        return "its host name does not resolve"
    if any(s in text for s in ("connection refused", "failed to connect", "couldn't connect", "timed out")):
        return "its host could not be reached"
    missing = ("not found", "does not exist", "does not appear to be a git repository", "authentication", "username",
               "permission denied")  # fmt: skip
    if any(s in text for s in (*missing, "403", "401")):
        return NOT_PUBLIC
    if "not our ref" in text or "unadvertised object" in text or "did not match any" in text:
        return "it does not have the commit"
    return "git could not read it"


def is_local_path(url: str) -> bool:
    """True for a local path or ``file://`` URL (only reachable with ``allow_local_repos``)."""
    return urllib.parse.urlsplit(url).scheme in ("", "file")


def run_git(
    settings: Settings,
    argv: list[str],
    url: str,
    work_dir: Path,
    *,
    timeout: float,
    limits: process.Limits,
    watch: Callable[[], str | None] | None = None,
    private: bool = False,
) -> subprocess.CompletedProcess:
    """Run a git command about ``url`` with ``work_dir`` as its folder.

    For a network URL it runs in the sandbox, under the kernel's network rules,
    with the host's credential when ``private``. A local path (``allow_local_repos``
    only) is read as binderlite's own user but with nothing but the ``file``
    protocol, so no submodule reaches a network.
    """
    allow_local = settings.allow_local_repos
    env = git_environment(settings, url, allow_local)
    local = is_local_path(url)
    owner = None
    if local:
        env["GIT_ALLOW_PROTOCOL"] = "file"
        env["GIT_CONFIG_PARAMETERS"] = "'safe.directory=*'"
        work_dir.mkdir(parents=True, exist_ok=True)
    else:
        netrules.ensure_rules(settings)
        user = process.ensure_user(process.sandbox_user(settings, allow_local))
        process.prepare_work_dir(work_dir, user)
        owner = (user.pw_uid, user.pw_gid)
    with contextlib.ExitStack() as stack:
        if private and not local:
            env.update(stack.enter_context(credential_environment(settings, url, work_dir, owner)))
        return process.run(
            settings,
            argv,
            work_dir,
            timeout=timeout,
            allow_local=allow_local,
            env=env,
            limits=limits,
            watch=watch,
            confine=not local,
        )


def credential_environment(
    settings: Settings, url: str, work_dir: Path, owner: tuple[int, int] | None
) -> contextlib.AbstractContextManager[dict[str, str]]:
    """The seam for per-host credentials: extra git environment for ``url``'s host while the block runs."""
    return host_credential_environment(
        settings, url, work_dir, mount=process.WORK_MOUNT, ssh_command=SSH_COMMAND, owner=owner
    )


def ls_remote(settings: Settings, url: str, ref: str, private: bool = False) -> str | None:
    """The commit SHA ``ref`` names at ``url`` (asked in the sandbox), or None if there is no such ref.

    A repository that cannot be read raises FetchError with a generic reason
    (RefNotFoundError when it may not exist or is not public).
    """
    patterns = [ref] if ref == "HEAD" else [ref, f"{ref}^{{}}"]
    work = settings.build_work_dir / "resolve" / uuid.uuid4().hex
    try:
        proc = run_git(
            settings,
            ["git", "ls-remote", "--", url, *patterns],
            url,
            work,
            timeout=GIT_TIMEOUT,
            limits=process.Limits(memory=1024**3, file_size=1024**2, cpu_seconds=GIT_TIMEOUT),
            private=private,
        )
    except subprocess.TimeoutExpired:
        raise FetchError(f"Reading the repository {url} took longer than {GIT_TIMEOUT} s.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        log.info("git ls-remote of %s failed (exit %s): %s", url, proc.returncode, proc.stdout.strip()[-2000:])
        reason = git_failure_reason(proc.stdout)
        error = RefNotFoundError if reason == NOT_PUBLIC else FetchError  # a network failure is not a 404
        raise error(f"Could not read the repository {url}: {reason}.")
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
        check_no_userinfo(self.repo_url())
        url = check_repo_url(self.repo_url(), self.settings.allow_local_repos)
        sha, notes, private = self.resolve_git_ref(url, self.ref_to_resolve(), retry_head=self.retry_head)
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
            private=private,
        )

    def resolve_git_ref(self, url: str, ref: str, retry_head: bool = False) -> tuple[str, list[str], bool]:
        """The commit, notes for the user, and whether the repository needed the host's credential."""
        if not ref or ref.startswith("-") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in ref):
            raise SpecError(f"{ref!r} is not a valid git ref (branch, tag or commit).")
        if SHA1.match(ref):
            private = self.has_credential(url) and self.ls_remote(url, "HEAD")[1]
            return ref, [], private
        sha, private = self.ls_remote(url, ref)
        if sha is None and retry_head and ref in ("master", "main"):
            sha, private = self.ls_remote(url, "HEAD")
            if sha is not None:
                return sha, [f"No {ref} branch found; using the default branch (HEAD) instead.\n"], private
        if sha is None:
            raise RefNotFoundError(f"Could not resolve ref {ref!r} in {url}: no such branch, tag or commit.")
        return sha, [], private

    def has_credential(self, url: str) -> bool:
        return not is_local_path(url) and credential_for(self.settings, url) is not None

    def ls_remote(self, url: str, ref: str) -> tuple[str | None, bool]:
        """``ls_remote`` anonymously, then, if refused and the host has a credential, with it (private)."""
        try:
            return ls_remote(self.settings, url, ref), False
        except RefNotFoundError:
            if not self.has_credential(url):
                raise
        try:
            return ls_remote(self.settings, url, ref, private=True), True
        except RefNotFoundError:
            host = url_host(url)
            raise RefNotFoundError(
                f"Could not read the repository {url}: it does not exist, or the credential for {host} "
                "in the secrets file does not give access to it."
            ) from None


class GitHubProvider(GitRefMixin, RepoProvider):
    name = "gh"
    display_name = "GitHub"
    form = LinkForm("GitHub repository name or URL", "org/repo or https://github.com/org/repo")
    link_pattern = "/v2/gh/<org>/<repo>/<ref>"
    documentation = "GitHub (host: `github_host`)"
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
    form = LinkForm(
        "GitLab.com repository or URL", "group/project or https://gitlab.com/group/project", url_encode=True
    )
    link_pattern = "/v2/gl/<url-escaped namespace>/<ref>"
    documentation = "GitLab (host: `gitlab_host`)"

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
    form = LinkForm("Arbitrary git repository URL", "https://git.example.org/lab/analysis.git", url_encode=True)
    link_pattern = "/v2/git/<url-escaped clone URL>/<ref>"
    documentation = "any git host"

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
    form = LinkForm("Gist ID (username/gistId) or URL", "user/0123456789abcdef")
    link_pattern = "/v2/gist/<user>/<id>[/<ref>]"
    documentation = "a gist"

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
