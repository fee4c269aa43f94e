"""Julia and Nix repositories: detected as repo2docker detects them, and refused at once, saying why.

binderlite's build packs install from Debian's mirror and the package index
only. Julia needs julialang.org's releases and its package server (Debian's
own Julia stopped at 1.5, in bullseye, and IJulia and every package still
come from the package server); ``default.nix`` needs nixpkgs and its binary
cache (channels.nixos.org, cache.nixos.org) — Debian packages the ``nix``
tool, not those. None of them is reachable from a machine without the
internet, and binderlite has no setting for a mirror of them yet. So such a
repository fails before any build step runs, with a message that says what
is missing and what would build it: ``build_packs = 'repo2docker'`` on a
machine that reaches those sources (and conda-forge, which repo2docker's
build packs need for Python). Rendering is the first thing repo2docker
does with the build pack it picked, so that is where the refusal is raised.
"""

from __future__ import annotations

import os

from repo2docker.buildpacks.base import BaseImage

from binderlite.errors import BadInputError


class UnsupportedBuildPack(BaseImage):
    """Detects ``files`` (in ``binder/``, ``.binder/`` or the top) and refuses to build."""

    language = ""
    files: tuple[str, ...] = ()
    missing = ""

    def found(self) -> list[str]:
        return [name for name in self.files if os.path.exists(self.binder_path(name))]

    def detect(self) -> bool:
        return bool(self.found())

    def render(self, build_args: dict | None = None) -> str:
        raise BadInputError(
            f"This repository asks for {self.language} ({', '.join(self.found())}), which binderlite's build packs "
            f"cannot build: they install only from Debian's mirror and the package index, and {self.language} "
            f"needs {self.missing}. binderlite has no setting for a mirror of those yet; on a machine that reaches "
            f"them and conda-forge, the setting build_packs = 'repo2docker' builds it with repo2docker's own "
            f"{self.language} support."
        )


class JuliaBuildPack(UnsupportedBuildPack):
    language = "Julia"
    files = ("Project.toml", "JuliaProject.toml", "REQUIRE")
    missing = "julialang.org's releases and package server (Debian's Julia stopped at 1.5, in bullseye)"


class NixBuildPack(UnsupportedBuildPack):
    language = "Nix"
    files = ("default.nix",)
    missing = "nixpkgs and its binary cache (channels.nixos.org, cache.nixos.org), which Debian does not package"
