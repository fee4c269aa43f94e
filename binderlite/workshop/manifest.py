"""The workshop manifest: which links were prepared, to which commit and image, for how many attendees.

It is one JSON file, ``<workshop_dir>/manifest.json``, written by ``binderlite
workshop prepare`` and carried in the bundle. Offline, a link resolves
through it (``lookup``) to the prepared commit, so the handout's links keep
working without the forge or the DOI resolver.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from binderlite.errors import ConfigError
from binderlite.links.model import ResolvedRepo
from binderlite.settings import Settings

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
# What a prepared link keeps of its ResolvedRepo (all but the per-request notes and the private flag).
RESOLVED_FIELDS = (
    "provider",
    "spec",
    "repo_url",
    "unresolved_ref",
    "resolved_ref",
    "resolved_spec",
    "ref_url",
    "build_slug",
    "content_provider",
)


@dataclass(frozen=True)
class PreparedLink:
    """One prepared link: what it resolved to when online, and the image built from it."""

    link: str  # as the handout has it, e.g. gh/org/repo/main
    provider: str
    spec: str
    repo_url: str
    unresolved_ref: str
    resolved_ref: str
    resolved_spec: str
    ref_url: str
    build_slug: str
    content_provider: str
    image: str
    bare_copy: str = ""  # path of the bare git copy, relative to the workshop folder ("" for records)

    def resolved(self) -> ResolvedRepo:
        """The ResolvedRepo this link had when it was prepared, with a note saying so."""
        note = f"Offline: using the prepared version of {self.provider}/{self.spec} (commit {self.resolved_ref[:12]})"
        return ResolvedRepo(**{name: getattr(self, name) for name in RESOLVED_FIELDS}, notes=[note])

    @classmethod
    def from_resolved(cls, link: str, resolved: ResolvedRepo, image: str, bare_copy: str = "") -> PreparedLink:
        fields = {name: getattr(resolved, name) for name in RESOLVED_FIELDS}
        return cls(link=link, image=image, bare_copy=bare_copy, **fields)


@dataclass(frozen=True)
class Manifest:
    """What a workshop carries: its prepared links, the other images it needs, and its size."""

    links: tuple[PreparedLink, ...] = ()
    attendees: int = 0
    images: tuple[str, ...] = ()  # base and stage images that offline builds need besides the prepared ones
    extra_packages: tuple[str, ...] = ()
    created: float = field(default_factory=time.time)
    version: int = MANIFEST_VERSION

    def lookup(self, provider: str, spec: str) -> PreparedLink | None:
        """The prepared link for ``provider``/``spec`` (the spec as in the link, escaped or not), or None."""
        wanted = urllib.parse.unquote(spec.strip("/"))
        for entry in self.links:
            if entry.provider == provider and urllib.parse.unquote(entry.spec.strip("/")) == wanted:
                return entry
        return None

    def merged(self, entries: list[PreparedLink]) -> tuple[PreparedLink, ...]:
        """This manifest's links with ``entries`` added; an entry replaces one of the same provider and spec."""
        fresh = {(e.provider, urllib.parse.unquote(e.spec.strip("/"))) for e in entries}
        kept = [e for e in self.links if (e.provider, urllib.parse.unquote(e.spec.strip("/"))) not in fresh]
        return (*kept, *entries)

    def all_images(self) -> list[str]:
        """Every image of the workshop, prepared ones first, without repeats."""
        return list(dict.fromkeys([entry.image for entry in self.links] + list(self.images)))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "the workshop manifest") -> Manifest:
        try:
            raw = json.loads(text)
            if raw.get("version") != MANIFEST_VERSION:
                raise ConfigError(
                    f"{where} has version {raw.get('version')!r}; this binderlite reads {MANIFEST_VERSION}."
                )
            return cls(
                links=tuple(PreparedLink(**entry) for entry in raw.get("links", [])),
                attendees=int(raw.get("attendees", 0)),
                images=tuple(raw.get("images", [])),
                extra_packages=tuple(raw.get("extra_packages", [])),
                created=float(raw.get("created", 0)),
                version=raw["version"],
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"{where} is not a valid workshop manifest ({exc}).") from None


def manifest_path(settings: Settings) -> Path:
    return settings.workshop_dir / MANIFEST_NAME


def load_manifest(settings: Settings) -> Manifest | None:
    """The workshop's manifest, or None when no workshop was prepared or imported here."""
    path = manifest_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return Manifest.from_json(text, str(path))


def save_manifest(settings: Settings, manifest: Manifest) -> Path:
    """Write the manifest atomically (readers never see half of it); return its path."""
    path = manifest_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".manifest-", delete=False) as tmp:
        tmp.write(manifest.to_json())
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    return path
