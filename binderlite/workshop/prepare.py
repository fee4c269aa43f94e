"""``binderlite workshop prepare``: while online, resolve, build and copy each link of a workshop, and record it.

For every link of the links file: resolve it to a commit (``links.resolve``),
build its image with the build pipeline (the caller's ``build``: the CLI
streams the log), and keep a bare copy of a git repository under
``repos_dir`` (cloned in the sandbox, like every fetch), from which offline
rebuilds fetch. The manifest records link → commit → image, merged with
what was prepared before; then the package mirror collects what the builds
installed.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from binderlite import links
from binderlite.builds import gitcopy
from binderlite.builds.baseimage import available_base_images, toolchain_image_name
from binderlite.builds.buildpacks import prepare_shared_stages
from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BadInputError, BinderliteError, FetchError
from binderlite.links import ResolvedRepo, git
from binderlite.sandbox import checkout, process
from binderlite.settings import Settings
from binderlite.workshop.linksfile import LinkLine
from binderlite.workshop.manifest import Manifest, PreparedLink, load_manifest, save_manifest

Echo = Callable[[str], None]


def repos_dir(settings: Settings) -> Path:
    """The bare git copies of the prepared repositories: ``<workshop_dir>/repos``."""
    return gitcopy.copies_dir(settings)


def _git_ok(result: subprocess.CompletedProcess, what: str, url: str) -> None:
    if result.returncode != 0:
        raise FetchError(f"Could not {what} {url}: {git.git_failure_reason(result.stdout)}.")


def make_bare_copy(settings: Settings, resolved: ResolvedRepo) -> str:
    """Clone ``resolved``'s repository bare (in the sandbox) into ``repos_dir``; its path relative to workshop_dir.

    Branches and tags are copied (not a forge's pull-request refs); the prepared
    commit is fetched on its own if no branch or tag holds it.
    """
    url, commit = resolved.repo_url, resolved.resolved_ref
    work = settings.build_work_dir / "prepare" / uuid.uuid4().hex
    limits = process.Limits(file_size=settings.max_file_size_bytes)

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        try:
            return git.run_git(
                settings, argv, url, work, timeout=settings.build_timeout, limits=limits, private=resolved.private
            )
        except subprocess.TimeoutExpired:
            raise FetchError(f"Copying {url} took longer than {settings.build_timeout} s.") from None

    try:
        _git_ok(run(["git", "clone", "--bare", "--quiet", "--", url, "copy.git"]), "copy", url)
        if run(["git", "-C", "copy.git", "cat-file", "-e", f"{commit}^{{commit}}"]).returncode != 0:
            _git_ok(run(["git", "-C", "copy.git", "fetch", "--quiet", "origin", commit]), "copy the commit of", url)
        checkout.seal(work)  # root's from now on; readable by everyone, writable by no sandboxed process
        if not gitcopy.has_commit(work / "copy.git", commit):
            raise FetchError(f"The copy of {url} does not have commit {commit}.")
        target = gitcopy.copy_path(settings, url)
        target.parent.mkdir(parents=True, exist_ok=True)
        for folder in (settings.workshop_dir, target.parent):
            folder.chmod(0o755)
        old = target.with_name(target.name + ".old")
        if target.exists():
            target.rename(old)
        shutil.move(work / "copy.git", target)  # the build work dir may be on another filesystem
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(target.relative_to(settings.workshop_dir))


def workshop_images(settings: Settings, echo: Echo) -> list[str]:
    """The base and toolchain images on this daemon and the shared stages on them, which offline builds start from.

    The stages are made now if missing (``binderlite base-image`` does the same).
    """
    client = docker_client(settings)
    bases = available_base_images(settings)
    names: list[str] = []
    for base in bases:
        names.append(base.name)
        if base.toolchain_id:
            names.append(toolchain_image_name(base.image_id))
    if settings.build_packs == "binderlite":
        names += prepare_shared_stages(settings, bases, say=lambda text: echo(text.rstrip("\n")))
    return [name for name in dict.fromkeys(names) if local_image_exists(client, name)]


def read_extra_packages(path: Path) -> list[str]:
    """Requirement lines of ``path`` (``#`` comments and blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"Cannot read the extra packages file {path}: {exc}.") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def prepare_links(
    settings: Settings, lines: list[LinkLine], build: Callable[[ResolvedRepo], str], echo: Echo
) -> list[PreparedLink]:
    """Resolve, build and copy every link; the manifest entries. The first failure stops, naming its line."""
    entries = []
    for index, line in enumerate(lines, start=1):
        echo(f"[{index}/{len(lines)}] {line.link} (line {line.number})")
        try:
            resolved = links.resolve(line.provider, line.spec, settings)
            echo(f"  commit {resolved.resolved_ref}")
            image = build(resolved)
            bare = make_bare_copy(settings, resolved) if resolved.content_provider == "git" else ""
        except BinderliteError as exc:
            exc.message = f"{line.link} (line {line.number}): {exc.message.strip()}"
            raise
        if bare:
            echo(f"  bare copy {settings.workshop_dir / bare}")
        entries.append(PreparedLink.from_resolved(line.link, resolved, image, bare))
    return entries


def record(
    settings: Settings,
    entries: list[PreparedLink],
    lines: list[LinkLine],
    attendees: int | None,
    extra: list[str],
    echo: Echo = print,
) -> Manifest:
    """Merge ``entries`` into the manifest on disk (same provider and spec: replaced) and save it."""
    before = load_manifest(settings) or Manifest()
    counted = attendees or max((line.attendees for line in lines), default=0) or before.attendees
    manifest = Manifest(
        links=before.merged(entries),
        attendees=counted,
        images=tuple(workshop_images(settings, echo)),
        extra_packages=tuple(dict.fromkeys([*before.extra_packages, *extra])),
    )
    save_manifest(settings, manifest)
    return manifest


def collect_packages(settings: Settings, manifest: Manifest, echo: Echo) -> None:
    """Fill the package mirror from the prepared images and the extra packages, where this binderlite has one."""
    try:
        from binderlite.workshop.mirror import collect_mirror
    except ImportError:
        echo("package mirror: not available")
        return
    collect_mirror(settings, [entry.image for entry in manifest.links], list(manifest.extra_packages), echo=echo)
