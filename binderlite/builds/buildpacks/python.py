"""binderlite's Python build pack for repo2docker: package index only, uv, one venv.

It honours repo2docker's conventions (``binder/`` or ``.binder/`` first,
``requirements.txt``, ``apt.txt``, ``postBuild``, ``start``, ``runtime.txt``,
``setup.py``/``pyproject.toml``, ``Pipfile``/``Pipfile.lock``,
``environment.yml``) but installs from the package index with ``uv`` into a
venv made from the base image's Python, instead of conda.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
from repo2docker.buildpacks.base import DEFAULT_NB_UID, BaseImage
from repo2docker.utils import is_local_pip_requirement, open_guess_encoding

from binderlite.builds.buildpacks.apt import check_apt_packages
from binderlite.builds.buildpacks.specfiles import Conversion, convert_environment_yml, convert_pipfile
from binderlite.builds.buildpacks.template import TEMPLATE

log = logging.getLogger("repo2docker")

VENV_PIP = "uv pip install --python ${VENV_DIR}/bin/python"
PYTHON_VERSION = re.compile(r"\d+(\.\d+){0,2}")
GENERATED_IN_IMAGE = "/srv/binderlite"


@dataclass(frozen=True)
class BuildOptions:
    """What a site configures about builds (from Settings)."""

    ca_bundle: str
    generated_dir: str
    tooling_specs: tuple[str, ...]
    uv_binary: str
    index_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class BinderlitePythonBuildPack(BaseImage):
    """Python environments from the package index; configured via ``options``."""

    options: BuildOptions

    def detect(self) -> bool:
        return True

    # ---- what the repository asks for ---------------------------------
    @lru_cache
    def _conversion(self) -> Conversion:
        env_yml = self.binder_path("environment.yml")
        if os.path.exists(env_yml):
            with open_guess_encoding(env_yml) as fh:
                return convert_environment_yml(fh.read())
        pipfile, lock = self.binder_path("Pipfile"), self.binder_path("Pipfile.lock")
        if os.path.exists(lock) or os.path.exists(pipfile):
            lock_text = Path(lock).read_text() if os.path.exists(lock) else None
            pipfile_text = Path(pipfile).read_text() if os.path.exists(pipfile) else None
            return convert_pipfile(pipfile_text, lock_text)
        return Conversion()

    def _python_request(self) -> tuple[str, str]:
        """(command, source) of the Python the repository asks for; only ``pythonX.Y`` ever reaches the Dockerfile."""
        name, version, _ = self.runtime
        if name == "python" and version:
            if PYTHON_VERSION.fullmatch(version):
                return f"python{'.'.join(version.split('.')[:2])}", "runtime.txt"
            log.warning(f"binderlite: runtime.txt asks for python-{version!r}, which is not a version; ignored.\n")
        requested = self._conversion().python_version or ""
        major_minor = ".".join(requested.split(".")[:2])
        if PYTHON_VERSION.fullmatch(major_minor):
            return f"python{major_minor}", "the environment file"
        return "python3", "default"

    def _is_python_package(self) -> bool:
        if self.binder_dir:
            return False
        if os.path.exists("setup.py"):
            return True
        if os.path.exists("pyproject.toml"):
            import tomllib

            with open("pyproject.toml", "rb") as fh:
                data = tomllib.load(fh)
            return "project" in data and "build-system" in data
        return False

    def _requirements_file(self) -> str | None:
        path = self.binder_path("requirements.txt")
        return path if os.path.exists(path) else None

    def _requirements_are_local(self) -> bool:
        path = self._requirements_file()
        if path is None:
            return False
        with open_guess_encoding(path) as fh:
            return any(is_local_pip_requirement(line) for line in fh)

    @lru_cache
    def _generated_files(self) -> dict[str, str]:
        """Converted requirements written to a content-addressed host path → image path."""
        conversion = self._conversion()
        for note in conversion.notes:
            log.info(f"binderlite: {note}\n")
        for warning in conversion.warnings:  # shown apart, on the launch page and in the CLI's summary
            log.warning(f"binderlite: {warning}\n")
        if not conversion.requirements:
            return {}
        text = conversion.text()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        host_dir = Path(self.options.generated_dir) / digest
        host_dir.mkdir(parents=True, exist_ok=True)
        host_path = host_dir / "converted-requirements.txt"
        host_path.write_text(text)
        return {str(host_path): f"{GENERATED_IN_IMAGE}/converted-requirements.txt"}

    # ---- repo2docker's hooks ------------------------------------------
    @lru_cache
    def get_build_script_files(self) -> dict[str, str]:
        files = {
            self.options.ca_bundle: "/usr/local/share/binderlite/ca-certificates.crt",
            self.options.uv_binary: "/usr/local/bin/uv",
        }
        files.update(self._generated_files())
        return files

    @lru_cache
    def get_preassemble_script_files(self) -> dict[str, str]:
        files = {}
        req = self._requirements_file()
        if req and not self._is_python_package() and not self._requirements_are_local():
            files[req] = req
        return files

    def _apt_script(self) -> list[tuple[str, str]]:
        """apt.txt's packages as a root step; only package names reach it (``check_apt_packages``)."""
        try:
            with open_guess_encoding(self.binder_path("apt.txt")) as fh:
                packages = check_apt_packages(fh.read())
        except FileNotFoundError:
            return []
        if not packages:
            return []
        names = " ".join(shell_quote(p) for p in sorted(packages))
        return [
            (
                "root",
                "apt-get -qq update && "
                f"apt-get install --yes --no-install-recommends {names} && "
                "apt-get -qq purge && apt-get -qq clean && rm -rf /var/lib/apt/lists/*",
            )
        ]

    @lru_cache
    def get_preassemble_scripts(self) -> list[tuple[str, str]]:
        scripts = self._apt_script()  # in place of repo2docker's, which lets more than a package name through
        if self._generated_files():
            target = f"{GENERATED_IN_IMAGE}/converted-requirements.txt"
            scripts.append(
                (
                    "${NB_USER}",
                    f"{VENV_PIP} -r {target} || "
                    f"(echo 'binderlite: installing converted packages one by one'; "
                    f'while read -r req; do {VENV_PIP} "$req" || '
                    f'echo "binderlite: skipped $req: not installable from the package index"; '
                    f"done < {target})",
                )
            )
        if self.get_preassemble_script_files():
            scripts.append(("${NB_USER}", f"{VENV_PIP} -r {shell_quote(self._requirements_file())}"))
        return scripts

    @lru_cache
    def get_assemble_scripts(self) -> list[tuple[str, str]]:
        scripts = []
        req = self._requirements_file()
        if req and not self.get_preassemble_script_files():
            scripts.append(("${NB_USER}", f"{VENV_PIP} -r {shell_quote(req)}"))
        if self._is_python_package():
            scripts.append(("${NB_USER}", f"{VENV_PIP} ."))
        return scripts

    def render(self, build_args: dict | None = None) -> str:
        build_args = build_args or {}
        for unsupported in ("install.R", "Project.toml", "REQUIRE", "default.nix"):
            if os.path.exists(self.binder_path(unsupported)):
                log.warning(
                    f"binderlite: {unsupported} found but binderlite's build packs only set up Python; "
                    "set build_packs = 'repo2docker' for R, Julia or Nix.\n"
                )
        command, source = self._python_request()
        context_names = {src: self.generate_build_context_filename(src)[0] for src in self.get_build_script_files()}
        generated = [(context_names[src], dst) for src, dst in sorted(self._generated_files().items())]
        return jinja2.Template(TEMPLATE).render(
            base_image=self.base_image,
            ca_context_path=context_names[self.options.ca_bundle],
            index_env=list(self.options.index_env),
            python_command=command,
            python_source=source,
            uv_context_path=context_names[self.options.uv_binary],
            tooling_specs=" ".join(shell_quote(s) for s in self.options.tooling_specs),
            generated_files=generated,
            uid=build_args.get("NB_UID", DEFAULT_NB_UID),
            preassemble_files=sorted(self.get_preassemble_script_files().items()),
            preassemble_directives=_directives(self.get_preassemble_scripts()),
            assemble_directives=_directives(self.get_assemble_scripts()),
            labels=self.get_labels(),
            post_build_scripts=self.get_post_build_scripts(),
            start_script=self.get_start_script(),
        )


def _directives(scripts: list[tuple[str, str]]) -> list[str]:
    """``USER``/``RUN`` lines for (user, script) pairs, as repo2docker renders them."""
    lines, last_user = [], "root"
    for user, script in scripts:
        if user != last_user:
            lines.append(f"USER {user}")
            last_user = user
        lines.append(f"RUN {script.strip()}")
    return lines
