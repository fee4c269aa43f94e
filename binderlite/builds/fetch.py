"""Fetch what a link names into a fresh checkout, in the sandbox, and check it before the build reads it.

Git repositories are fetched with ``git`` itself (the commit the link
resolved to, then its submodules), data records with repo2docker's content
provider of the same name (``recordfetch``); both run as the sandbox user
(``binderlite.sandbox``), so the host they contact, every redirect, every
submodule URL and every download is held to the kernel's network rules, and
whatever they write stays in the work directory. A repository with a local
bare copy that has the commit (a prepared workshop's, ``gitcopy``) is
fetched from that copy, in the sandbox too, with no network protocol. While
they run, the checkout's size is watched; afterwards it is sealed and
checked (links stay inside, sizes within the limits). Users see a generic reason when a fetch
fails; git's own words, which could map internal hosts, go to the worker's
log only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from binderlite.builds import gitcopy, recordfetch
from binderlite.errors import FetchError
from binderlite.links import git, recordcredentials
from binderlite.sandbox import checkout, netrules, process
from binderlite.settings import Settings, proxy_environment

CHECKOUT = "repo"  # the checkout's folder inside the work directory
ORIGIN_COPY = "origin.git"  # a local bare copy's duplicate inside the work directory, while the fetch reads it


class Fetcher:
    """One fetch into ``work_dir/repo``; ``log`` gets lines users may see, ``detail`` lines only admins may."""

    def __init__(
        self,
        settings: Settings,
        work_dir: Path,
        *,
        allow_local: bool,
        log: Callable[[str], None],
        detail: Callable[[str], None],
        timeout: float,
    ):
        self.settings = settings
        self.work_dir = work_dir
        self.allow_local = allow_local
        self.log = log
        self.detail = detail
        self.timeout = timeout
        self.max_file = settings.max_file_size_bytes
        self.max_total = settings.max_repo_size_bytes
        self.private = False

    @property
    def checkout(self) -> Path:
        return self.work_dir / CHECKOUT

    def _too_big(self) -> str | None:
        if checkout.tree_size(self.work_dir) > self.max_total:
            return f"The repository is larger than {self.settings.max_repo_size} (setting max_repo_size)."
        return None

    def _finish(self, argv: list[str], run: Callable[[], subprocess.CompletedProcess]) -> subprocess.CompletedProcess:
        try:
            result = run()
        except subprocess.TimeoutExpired:
            raise FetchError(f"Fetching took longer than {self.timeout:.0f} s and was stopped.") from None
        if result.stdout.strip():
            self.detail(f"$ {' '.join(argv[:4])} …\n{result.stdout.strip()}\n")
        return result

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        """Run ``argv`` in the sandbox, the checkout's size watched."""
        limits = process.Limits(file_size=self.max_file)
        return self._finish(
            argv,
            lambda: process.run(
                self.settings,
                argv,
                self.work_dir,
                timeout=self.timeout,
                allow_local=self.allow_local,
                env=env,
                limits=limits,
                watch=self._too_big,
            ),
        )

    def run_git(self, argv: list[str], url: str) -> subprocess.CompletedProcess:
        limits = process.Limits(file_size=self.max_file)
        return self._finish(
            argv,
            lambda: git.run_git(
                self.settings,
                argv,
                url,
                self.work_dir,
                timeout=self.timeout,
                limits=limits,
                watch=self._too_big,
                private=self.private,
            ),
        )

    def git(self, url: str, ref: str) -> None:
        repo = ["git", "-C", CHECKOUT]
        self.run_git(["git", "init", "--quiet", CHECKOUT], url)
        self.run_git([*repo, "remote", "add", "origin", url], url)
        attempts = [
            [*repo, "fetch", "--quiet", "--depth", "1", "origin", ref],
            [*repo, "fetch", "--quiet", "origin", ref],
            [*repo, "fetch", "--quiet", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"],
        ]
        for argv in attempts:
            result = self.run_git(argv, url)
            if result.returncode == 0:
                break
        else:
            raise FetchError(f"Could not fetch {url}: {git.git_failure_reason(result.stdout)}.")
        result = self.run_git([*repo, "-c", "advice.detachedHead=false", "checkout", "--quiet", ref], url)
        if result.returncode != 0:
            raise FetchError(f"Could not check out {ref} of {url}: {git.git_failure_reason(result.stdout)}.")
        result = self.run_git([*repo, "submodule", "update", "--init", "--recursive", "--quiet"], url)
        if result.returncode != 0:
            raise FetchError(f"Could not fetch the submodules of {url}: {git.git_failure_reason(result.stdout)}.")

    def git_from_copy(self, copy: Path, url: str, ref: str) -> None:
        """Fetch ``ref`` from the local bare ``copy`` of ``url``, in the sandbox, with no network protocol.

        The sandbox hides binderlite's state folder, so the copy is duplicated into
        the work directory first (for the sandbox user) and removed after.
        """
        netrules.ensure_rules(self.settings)
        user = process.ensure_user(process.sandbox_user(self.settings, self.allow_local))
        process.prepare_work_dir(self.work_dir, user)
        origin = self.work_dir / ORIGIN_COPY
        shutil.copytree(copy, origin, symlinks=True)
        for path in [origin, *origin.rglob("*")]:
            os.lchown(path, user.pw_uid, user.pw_gid)
        env = {**git.git_environment(self.settings, url, self.allow_local), "GIT_ALLOW_PROTOCOL": "file"}
        repo = ["git", "-C", CHECKOUT]
        steps = [
            ["git", "init", "--quiet", CHECKOUT],
            [*repo, "remote", "add", "origin", f"{process.WORK_MOUNT}/{ORIGIN_COPY}"],
            [*repo, "fetch", "--quiet", "origin", ref],
            [*repo, "-c", "advice.detachedHead=false", "checkout", "--quiet", ref],
        ]
        for argv in steps:
            result = self.run(argv, env)
            if result.returncode != 0:
                raise FetchError(f"Could not check out {ref} of {url} from its local copy.")
        shutil.rmtree(origin)
        if (self.checkout / ".gitmodules").is_file():
            self.log("The local copy has no submodules: fetching them from their hosts\n")
            result = self.run_git([*repo, "submodule", "update", "--init", "--recursive", "--quiet"], url)
            if result.returncode != 0:
                raise FetchError(f"Could not fetch the submodules of {url}: {git.git_failure_reason(result.stdout)}.")

    def record(self, provider: str, record: str, ref: str) -> None:
        script = self.work_dir / "recordfetch.py"
        shutil.copyfile(recordfetch.__file__, script)
        env = {**proxy_environment(self.settings)}
        if self.settings.ca_bundle:
            env["REQUESTS_CA_BUNDLE"] = self.settings.ca_bundle
        if self.private:
            token = recordcredentials.environment(self.settings, provider, record)
            if not token:
                raise FetchError(f"Could not fetch {provider} record {record}: no token for its host any more.")
            env.update(token)
        result = self.run([sys.executable, "-I", script.name, provider, record, ref], env)
        failure = ""
        for line in result.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("phase") == "failed":
                failure = str(event.get("message", "")).strip()
            elif isinstance(event.get("message"), str):
                self.log(event["message"])
        if result.returncode != 0:
            reason = failure if failure.startswith("Refused:") else "the record or one of its files could not be read"
            raise FetchError(f"Could not fetch {provider} record {record}: {reason}")

    def fetch(self, repo_url: str, ref: str, content_provider: str, private: bool = False) -> Path:
        """Fetch, seal and check; return the checkout (raise FetchError/UnsafeRepositoryError).

        ``private``: git authenticates with the host's credential, a record's download sends the host's
        token (resolution needed it).
        """
        self.private = private
        copy = gitcopy.copy_with(self.settings, repo_url, ref) if content_provider == "git" else None
        if copy is not None:
            self.log(f"Fetching {repo_url} at {ref} from its local copy (prepared for a workshop)\n")
            self.git_from_copy(copy, repo_url, ref)
        elif content_provider == "git":
            self.log(f"Fetching {repo_url} at {ref}\n")
            self.git(repo_url, ref)
        else:
            netrules.ensure_rules(self.settings)
            user = process.ensure_user(process.sandbox_user(self.settings, self.allow_local))
            process.prepare_work_dir(self.work_dir, user)
            self.record(content_provider, repo_url, ref)
        checkout.seal(self.work_dir)
        if not self.checkout.is_dir():
            raise FetchError("The fetch produced no files.")
        checkout.check_tree(self.checkout, self.max_file, self.max_total)
        return self.checkout
