"""binderlite's R build pack: R, IRkernel and CRAN packages from Debian; the rest from a CRAN mirror.

A repository is an R repository when its ``runtime.txt`` says
``r-<version>[-<YYYY-MM-DD>]`` or ``r-<YYYY-MM-DD>``, or it has a
``DESCRIPTION`` at its top (and no ``binder/`` folder), as for repo2docker
(which also wants a date in ``runtime.txt``), or it has an ``install.R``
(which repo2docker alone would ignore): each plainly asks for R.

R comes from Debian, whose releases each have one R (``R_RELEASES``), so the
image starts from that release's R base (``baseimage.ensure_r_base_image``):
the version asked for if a release has it, else the nearest of the same major
version — and then the build fails, naming both, if any R package the
repository names does not install. The R packages that ``install.R``'s
``install.packages()`` calls and DESCRIPTION's dependencies name (found in
the text, without running it) are installed from Debian's ``r-cran-*``
packages where Debian has them (``rpackages``); ``install.R`` then runs as the notebook user
with the CRAN mirror (``cran_mirror_url``) as R's ``repos`` for everything
else. The Python side (JupyterLab, requirements.txt, apt.txt, postBuild) is
the Python build pack's. RStudio Server is not in Debian, so there is no
RStudio; Shiny Server is, and comes with ``jupyter-shiny-proxy`` when the
repository uses Shiny.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial

import binderlite.builds.buildpacks.r_template as steps
from binderlite.builds.baseimage import LocalBase, ensure_r_base_image
from binderlite.builds.buildpacks.python import VENV_PIP, BinderlitePythonBuildPack
from binderlite.builds.buildpacks.rpackages import (
    R_NAME,
    description_dependencies,
    description_fields,
    install_r_packages,
)
from binderlite.errors import BadInputError
from binderlite.settings import Settings

log = logging.getLogger("repo2docker")

R_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class RRelease:
    """A Debian release and the R it packages (checked with apt-cache policy r-base-core)."""

    suite: str
    version: str

    @property
    def series(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


# Each has Shiny Server too. Not bullseye (R 4.0.4): its Python 3.9 cannot run the hub's
# jupyterhub-singleuser (JupyterHub 5 and later need 3.10), so no server could start.
R_RELEASES = (RRelease("bookworm", "4.2.2"), RRelease("trixie", "4.5.0"))
DEFAULT_SUITE = "bookworm"  # the release of binderlite's own base image


@dataclass(frozen=True)
class RChoice:
    """The release a build uses, and what the log and a failure say about it ('' when it is what was asked)."""

    release: RRelease
    note: str = ""


def available() -> str:
    return ", ".join(f"R {r.version} in {r.suite}" for r in R_RELEASES)


def choose_r_release(requested: str | None) -> RChoice:
    """The release for runtime.txt's R version: the same X.Y, else the nearest of the same major (newer on a tie)."""
    default = next(r for r in R_RELEASES if r.suite == DEFAULT_SUITE)
    if not requested:
        return RChoice(default)
    match = R_VERSION.fullmatch(requested)
    if not match:
        raise BadInputError(
            f"runtime.txt asks for R {requested!r}, which is not a version: write r-<version> "
            f"(e.g. r-{default.version[:3]}), optionally followed by -<YYYY-MM-DD>."
        )
    major, minor = int(match.group(1)), int(match.group(2))
    same_major = [r for r in R_RELEASES if r.series[0] == major]
    if not same_major:
        raise BadInputError(
            f"runtime.txt asks for R {requested}, but Debian's releases provide {available()}, "
            f"none of them R {major}.x. Ask for one of those in runtime.txt "
            f"(e.g. r-{default.version[:3]}), or build from a Dockerfile with the R you need."
        )
    for release in same_major:
        if release.series[1] == minor:
            return RChoice(release)
    nearest = min(same_major, key=lambda r: (abs(r.series[1] - minor), -r.series[1]))
    return RChoice(
        nearest,
        f"R {requested} was asked for (runtime.txt), which no Debian release provides ({available()}); "
        f"this build uses the nearest, R {nearest.version} ({nearest.suite}), only if every R package installs.",
    )


# ---- the build pack ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ROptions:
    """What a site configures about R builds (from Settings)."""

    cran_mirror_url: str
    base_image: Callable[[str, Callable[[str], None]], LocalBase]  # (Debian suite, log) → the R base image


def r_options(settings: Settings) -> ROptions:
    return ROptions(settings.cran_mirror_url, partial(ensure_r_base_image, settings))


class BinderliteRBuildPack(BinderlitePythonBuildPack):
    """R from Debian on top of the Python build pack; configured via ``options`` and ``r_options``."""

    r_options: ROptions

    def _runtime_text(self) -> str:
        try:
            with open(self.binder_path("runtime.txt")) as fh:
                return fh.read().strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return ""

    def _install_r(self) -> str | None:
        path = self.binder_path("install.R")
        return path if os.path.exists(path) else None

    def _description(self) -> str | None:
        return "DESCRIPTION" if not self.binder_dir and os.path.exists("DESCRIPTION") else None

    def detect(self) -> bool:
        return self._runtime_text().startswith("r-") or bool(self._install_r() or self._description())

    # ---- what the repository asks for ---------------------------------
    @cached_property
    def _runtime_request(self) -> tuple[str | None, str | None]:
        """(R version, snapshot date) from runtime.txt; either may be None."""
        text = self._runtime_text()
        if not text.startswith("r-"):
            return None, None
        try:
            _, version, date = self.runtime
        except ValueError:
            raise BadInputError(
                f"runtime.txt says {text[:40]!r}: write r-<version>, r-<version>-<YYYY-MM-DD> or r-<YYYY-MM-DD>."
            ) from None
        return version, date.isoformat() if date else None  # repo2docker checked the date

    @cached_property
    def _choice(self) -> RChoice:
        return choose_r_release(self._runtime_request[0])

    def _cran_url(self) -> str:
        date = self._runtime_request[1]
        return self.r_options.cran_mirror_url.replace("{date}", date or "latest")

    @cached_property
    def _packages(self) -> tuple[list[str], list[str]]:
        """(install.R's install.packages() names, DESCRIPTION's dependencies)."""
        install_r, description = self._install_r(), self._description()
        named = install_r_packages(_read(install_r)) if install_r else []
        needed = description_dependencies(_read(description)) if description else []
        return named, needed

    def _all_packages(self) -> list[str]:
        named, needed = self._packages
        return list(dict.fromkeys(named + needed))

    def _checked_packages(self) -> list[str]:
        """What must load after the build: the named packages, and DESCRIPTION's own."""
        own = description_fields(_read(self._description())).get("Package", "") if self._description() else ""
        return self._all_packages() + ([own] if R_NAME.fullmatch(own) else [])

    def _shiny(self) -> bool:
        return "shiny" in self._all_packages()

    # ---- repo2docker's hooks and the Python build pack's ---------------
    def candidate_images(self) -> tuple[LocalBase, ...]:
        """Only the R base of the chosen release: its Python runs JupyterLab."""
        return (self._r_base_image,)

    def get_image_prepare_scripts(self) -> list[tuple[str, str]]:
        """In the image's own stage (R lives there, not in the packages stage): R's setup and Debian's packages."""
        debian = [f"r-cran-{name.lower()}" for name in self._all_packages()]
        scripts = [steps.setup(self._cran_url())]
        if debian or self._shiny():
            scripts.append(steps.debian_packages(debian, ["shiny-server"] if self._shiny() else []))
        if self._shiny():
            scripts += [steps.shiny_folders(), ("${NB_USER}", f"{VENV_PIP} jupyter-shiny-proxy")]
        return scripts

    def get_image_assemble_scripts(self) -> list[tuple[str, str]]:
        """After the repository is copied in: install.R, DESCRIPTION, and the check that every package loads."""
        scripts = []
        note = self._choice.note
        if self._install_r():
            scripts.append(steps.run_install_r(self._install_r(), note))
        if self._description():
            scripts.append(steps.install_description(self._packages[1], note))
        if self._checked_packages():
            scripts.append(steps.check_packages(self._checked_packages(), self._choice.release.suite, note))
        return scripts

    def _notes(self) -> list[str]:
        """What the build log says about R, once."""
        choice, (_, date) = self._choice, self._runtime_request
        release = choice.release
        notes = [choice.note or f"R {release.version} from Debian {release.suite}, with IRkernel."]
        if date and "{date}" not in self.r_options.cran_mirror_url:
            notes.append(
                f"runtime.txt's snapshot date {date} is not used: R packages come from Debian {release.suite} and "
                "the CRAN mirror as it is now (a cran_mirror_url with {date} would serve that day's CRAN)."
            )
        notes.append(
            "RStudio Server is not packaged by Debian, so this image has no RStudio (/rstudio): "
            "R runs in JupyterLab's R kernel."
        )
        if self._shiny():
            notes.append(f"Shiny Server from Debian {release.suite}, served at /shiny by jupyter-shiny-proxy.")
        return notes

    @cached_property
    def _r_base_image(self) -> LocalBase:
        return self.r_options.base_image(self._choice.release.suite, lambda message: log.info(message))

    def render(self, build_args: dict | None = None) -> str:
        if not getattr(self, "_noted", False):  # repo2docker renders twice
            for note in self._notes():
                log.info(f"binderlite: {note}\n")
            self._noted = True
        return super().render(build_args)


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()
