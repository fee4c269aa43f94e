"""The workshop bundle's format: one plain tar of named parts, each with a SHA-256 in one checksum file.

```
binderlite-workshop/SHA256SUMS     "<sha256>  <part>" per part (sha256sum -c reads it)
binderlite-workshop/bundle.json    what the bundle holds: parts, sizes, images, binderlite's version
binderlite-workshop/install.sh     installs binderlite on a Debian 12 machine with nothing, offline
binderlite-workshop/manifest.json  the workshop manifest (link → commit → image)
binderlite-workshop/mirror.tar     the package mirror folder      (absent when not collected)
binderlite-workshop/repos.tar      the bare git copies            (absent when none)
binderlite-workshop/wheels.tar     binderlite and every Python dependency as wheels
binderlite-workshop/debs.tar       the Debian 12 packages the install needs, with their dependencies
binderlite-workshop/proxy.tar.gz   configurable-http-proxy installed under a /usr/local-like prefix
binderlite-workshop/images.tar     ONE `docker save` of every image, so shared layers are stored once
```

A bundle is read as hostile until proven otherwise: ``verify`` accepts only
these regular files, once each, every one listed in the checksum file and
matching it, and every inner tar holding only plain files and folders that
stay inside it; it reads the whole bundle once and loads nothing.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from binderlite.builds.gitcopy import copies_dir
from binderlite.builds.packageindex import mirror_path
from binderlite.errors import BadInputError
from binderlite.settings import Settings, human_size

FOLDER = "binderlite-workshop"
CHECKSUMS = "SHA256SUMS"
INFO = "bundle.json"
INSTALLER = "install.sh"
MANIFEST = "manifest.json"
IMAGES = "images.tar"
MIRROR = "mirror.tar"
REPOS = "repos.tar"
WHEELS = "wheels.tar"
DEBS = "debs.tar"
PROXY = "proxy.tar.gz"
CA = "ca-bundle.crt"  # the CA bundle the workshop's stage images were made with
PARTS = (INFO, INSTALLER, MANIFEST, CA, MIRROR, REPOS, WHEELS, DEBS, PROXY, IMAGES)  # the order in the bundle
REQUIRED = (INFO, MANIFEST, IMAGES)
INNER_TARS = (MIRROR, REPOS, WHEELS, DEBS, PROXY)  # checked member by member (proxy: links inside allowed)
CHUNK = 1 << 20
CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9._-]+)$")


def folder_parts(settings: Settings) -> dict[str, Path]:
    """The parts that are a folder of this machine's workshop: the package mirror and the bare git copies."""
    return {MIRROR: mirror_path(settings), REPOS: copies_dir(settings)}


class BundleError(BadInputError):
    """The bundle is damaged, incomplete or unsafe; the message names the part."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_text(sums: dict[str, str]) -> str:
    """The checksum file for ``{part: sha256}``, in bundle order."""
    return "".join(f"{sums[part]}  {part}\n" for part in PARTS if part in sums)


def parse_checksums(text: str) -> dict[str, str]:
    """``{part: sha256}`` from a checksum file; refuses anything but one known part per line, once."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = CHECKSUM_LINE.match(line)
        if not match or match.group(2) not in PARTS:
            raise BundleError(f"The bundle's {CHECKSUMS} is damaged (line {number}: {line[:80]!r}); export it again.")
        if match.group(2) in sums:
            raise BundleError(f"The bundle's {CHECKSUMS} lists {match.group(2)} twice; export it again.")
        sums[match.group(2)] = match.group(1)
    return sums


@dataclass
class Verified:
    """A bundle that passed ``verify``: its parts' sizes, its checksum file, and the small parts' text."""

    sizes: dict[str, int] = field(default_factory=dict)
    sums: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # bundle.json, manifest.json

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def part_of(member: tarfile.TarInfo) -> str:
    """The part a bundle member is, or refuse it (a link, a device, a folder, a name outside the bundle)."""
    folder, _, part = member.name.partition("/")
    if folder != FOLDER or (part not in PARTS and part != CHECKSUMS):
        raise BundleError(f"The bundle holds {member.name!r}, which is no part of a workshop bundle; refusing it.")
    if not member.isreg():
        raise BundleError(f"The bundle's {part} is not a plain file (a link or a device); refusing it.")
    return part


class HashingReader:
    """A read-only file that hashes what is read through it."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(CHUNK):
            pass
        return self.digest.hexdigest()


def check_inner_member(part: str, member: tarfile.TarInfo) -> None:
    """Refuse an inner tar's member that is not a plain file or folder inside the part's folder."""
    name = member.name
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal == ".." or normal.startswith("../") or "\\" in name:
        raise BundleError(f"The bundle's {part} holds {name!r}, outside its folder; refusing the bundle.")
    if member.isreg() or member.isdir():
        return
    if part == PROXY and member.issym() and _link_stays_inside(name, member.linkname):
        return  # npm's bin/ links into lib/node_modules
    raise BundleError(f"The bundle's {part} holds {name!r}, a link or device; refusing the bundle.")


def _link_stays_inside(name: str, target: str) -> bool:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return not target.startswith("/") and resolved != ".." and not resolved.startswith("../")


def inner_members(part: str, fileobj: IO[bytes]) -> Iterator[tarfile.TarInfo]:
    """The members of an inner tar read as a stream, each checked; refuses a tar that is not one."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as inner:
            for member in inner:
                check_inner_member(part, member)
                yield member
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"The bundle's {part} is not a readable tar ({exc}); export it again.") from None


def verify(path: Path, echo: Callable[[str], None] = print) -> Verified:
    """Read the whole bundle once and refuse it unless every part is present, safe and matches its checksum."""
    found = Verified()
    actual: dict[str, str] = {}
    checksum_text_seen: str | None = None
    try:
        with tarfile.open(path, mode="r:") as bundle:
            for member in bundle:
                part = part_of(member)
                if part in actual or (part == CHECKSUMS and checksum_text_seen is not None):
                    raise BundleError(f"The bundle holds {part} twice; refusing it.")
                raw = bundle.extractfile(member)
                assert raw is not None  # a regular file, checked above
                if part == CHECKSUMS:
                    checksum_text_seen = raw.read(1 << 16).decode("utf-8", "replace")
                    continue
                reader = HashingReader(raw)
                if part in INNER_TARS:
                    for _ in inner_members(part, reader):
                        pass
                elif part in (INFO, MANIFEST, CA):
                    found.texts[part] = reader.read().decode("utf-8", "replace")
                actual[part] = reader.drain()
                found.sizes[part] = member.size
    except tarfile.TarError as exc:
        raise BundleError(f"{path} is not a workshop bundle (not a tar archive: {exc}).") from None
    except (EOFError, OSError) as exc:
        raise BundleError(f"{path} could not be read to its end ({exc}); copy it again.") from None
    if checksum_text_seen is None:
        raise BundleError(f"The bundle has no {CHECKSUMS}, so its parts cannot be checked; refusing it.")
    found.sums = parse_checksums(checksum_text_seen)
    for part in PARTS:
        if part in actual and part not in found.sums:
            raise BundleError(f"The bundle's {part} is not in {CHECKSUMS}; refusing it.")
        if part in found.sums and part not in actual:
            raise BundleError(f"The bundle's {part} is missing (listed in {CHECKSUMS}); copy the whole bundle again.")
        if part in actual and actual[part] != found.sums[part]:
            raise BundleError(f"The bundle's {part} does not match its checksum: it is damaged; copy it again.")
    for part in REQUIRED:
        if part not in actual:
            raise BundleError(f"The bundle has no {part}; it is not a complete workshop bundle.")
    echo(f"Checked {len(actual)} parts ({human_size(found.total)}): every checksum matches.")
    return found


@dataclass
class Report:
    """What a bundle holds, and how long each step took."""

    sizes: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def lines(self) -> list[str]:
        rows = [f"  {part:<14} {human_size(size):>11}" for part, size in self.sizes.items()]
        rows += [f"  {part:<14} {'absent':>11}" for part in self.absent]
        rows.append(f"  {'total':<14} {human_size(self.total):>11}")
        return rows + [f"  {step}: {seconds:.1f} s" for step, seconds in self.seconds.items()]
