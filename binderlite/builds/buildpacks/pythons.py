"""Which Python a build uses: the version a repository asks for, among those this machine has.

Base images are Debian releases (``base_image`` and ``python_base_images``),
each with its own Python: bullseye 3.9 (and ``python2.7``), bookworm 3.11,
trixie 3.13. ``choose_python`` is the rule, a pure function:

- the exact ``X.Y`` when an image has it;
- otherwise the nearest minor version of the same major (3.12 → 3.11 or
  3.13): on a tie the default base image's Python, else the older one (a
  release that supports Python N nearly always supports N-1, while wheels for
  N+1 often never came for the pinned version). The build then installs every
  requirement on it or fails naming the version asked for and those available;
- a repository that asks for no version gets the default base image's Python,
  unless ``pyproject.toml``'s ``requires-python`` excludes it (then the newest
  one it allows), as repo2docker does;
- a ``requires-python`` that excludes an explicitly asked version is the
  repository contradicting itself: an error, as in repo2docker.

Python 2 runs as a separate kernel beside a Python 3 JupyterLab
(``server_version``), as repo2docker does for versions before 3.7.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from binderlite.errors import BuildFailedError

VERSION = re.compile(r"\d+(\.\d+)*")
SEPARATE_KERNEL_BEFORE = (3, 7)  # repo2docker's kernel_env_cutoff_version


@dataclass(frozen=True)
class PythonRequest:
    """What the repository asks for: ``X.Y``, ``X`` or nothing, and which file said so."""

    version: str | None = None
    source: str = "default"
    requires_python: str | None = None  # pyproject.toml's [project] requires-python


@dataclass(frozen=True)
class PythonOffer:
    """One Python a base image has; ``server_version`` is the Python 3 that runs JupyterLab there."""

    version: str
    image: str
    server_version: str


@dataclass(frozen=True)
class PythonChoice:
    offer: PythonOffer
    request: PythonRequest
    exact: bool
    available: tuple[str, ...]

    @property
    def version(self) -> str:
        return self.offer.version

    @property
    def separate_kernel(self) -> bool:
        return _key(self.version) < SEPARATE_KERNEL_BEFORE

    def note(self) -> str:
        """One log line saying what was chosen and why."""
        have = ", ".join(self.available)
        if self.request.version is None:
            return f"Python {self.version} (no version asked for; this machine has {have})"
        if self.exact:
            return f"Python {self.version} as {self.request.source} asks"
        return (
            f"{self.request.source} asks for Python {self.request.version}, which this machine does not have "
            f"(it has {have}); using the nearest, Python {self.version}: the build fails if a requirement "
            "does not install on it"
        )

    def substitution(self) -> str:
        """What a failed install message adds when the version is not the one asked for ('' if it is)."""
        if self.exact or self.request.version is None:
            return ""
        return (
            f" Python {self.request.version} was asked for by {self.request.source}; "
            f"this machine has {', '.join(self.available)} (settings base_image, python_base_images)."
        )


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def major_minor(text: str | None) -> str | None:
    """``3.9`` from ``3.9``, ``3.9.18`` or ``3.9.*``; ``3`` from ``3``; None for anything that is not a version."""
    if not text:
        return None
    text = text.strip().rstrip("*").rstrip(".")
    if not VERSION.fullmatch(text):
        return None
    return ".".join(text.split(".")[:2])


def choose_python(request: PythonRequest, offers: list[PythonOffer], default_version: str) -> PythonChoice:
    """The offer to build with for ``request``, or BuildFailedError saying what was asked and what exists."""
    if not offers:
        raise BuildFailedError("No base image with Python is available: run `binderlite base-image`.")
    available = tuple(sorted({o.version for o in offers}, key=_key))
    spec = _specifier(request)
    asked = major_minor(request.version)

    def pick(version: str) -> PythonOffer:
        same = [o for o in offers if o.version == version]
        return next((o for o in same if o.version == default_version), same[0])

    def allowed(version: str) -> bool:
        return spec is None or spec.contains(version + ".0", prereleases=True)

    if asked and "." in asked:
        if not allowed(asked):
            raise BuildFailedError(
                f"{request.source} asks for Python {asked}, but pyproject.toml's requires-python is "
                f"{request.requires_python!r}: make them agree."
            )
        if asked in available:
            return PythonChoice(pick(asked), request, True, available)
        major = asked.split(".")[0]
        candidates = [v for v in available if v.split(".")[0] == major and allowed(v)]
        if not candidates:
            raise BuildFailedError(
                f"{request.source} asks for Python {asked}; this machine has Python {', '.join(available)} "
                "(settings base_image and python_base_images; `binderlite base-image` makes them)."
            )
        wanted = _key(asked)[1]

        def rank(version: str) -> tuple[int, int, int]:
            minor = _key(version)[1]
            return (abs(minor - wanted), version != default_version, minor)

        return PythonChoice(pick(min(candidates, key=rank)), request, False, available)

    major = asked  # "2", "3" or None
    candidates = [v for v in available if (major is None or v.split(".")[0] == major) and allowed(v)]
    if default_version in candidates:
        return PythonChoice(pick(default_version), request, major is not None, available)
    if not candidates:
        wanted = f"Python {major}" if major else f"a Python allowed by requires-python {request.requires_python!r}"
        raise BuildFailedError(
            f"{request.source} asks for {wanted}; this machine has Python {', '.join(available)} "
            "(settings base_image and python_base_images; `binderlite base-image` makes them)."
        )
    return PythonChoice(pick(max(candidates, key=_key)), request, major is not None, available)


def _specifier(request: PythonRequest) -> SpecifierSet | None:
    if not request.requires_python:
        return None
    try:
        return SpecifierSet(request.requires_python)
    except InvalidSpecifier:
        return None
