"""binderlite's Python build pack for repo2docker: package index only, uv, one venv.

It honours repo2docker's conventions (``binder/`` or ``.binder/`` first,
``requirements.txt``, ``apt.txt``, ``postBuild``, ``start``, ``runtime.txt``,
``setup.py``/``pyproject.toml``, ``Pipfile``/``Pipfile.lock``,
``environment.yml``) but installs from the package index with ``uv`` into a
venv, instead of conda. The Python is the one the repository asks for, from
whichever base image has it (``pythons.choose_python``); Python 2 becomes a
kernel beside a Python 3 JupyterLab, as in repo2docker. Requirements install
in a build stage with compilers (``template``); one that does not install
fails the build with one line saying which, on which Python, and why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
from packaging.specifiers import SpecifierSet
from repo2docker.buildpacks.base import DEFAULT_NB_UID, BaseImage
from repo2docker.utils import is_local_pip_requirement, open_guess_encoding

from binderlite.builds.baseimage import LocalBase
from binderlite.builds.buildpacks.apt import check_apt_packages
from binderlite.builds.buildpacks.pythons import PythonChoice, PythonOffer, PythonRequest, choose_python, major_minor
from binderlite.builds.buildpacks.specfiles import Conversion, convert_environment_yml, convert_pipfile
from binderlite.builds.buildpacks.template import (
    CA_FILE,
    ENVTOOL_FILE,
    JUPYTER_LEGACY_FILE,
    PACKAGES_STAGE,
    PRELUDE,
    TEMPLATE,
    TOOLING_STAGE,
    UV_FILE,
)
from binderlite.builds.stages import Stage, StageImages

log = logging.getLogger("repo2docker")

VENV_PIP = "uv pip install --python ${VENV_DIR}/bin/python"
KERNEL_PIP = "${KERNEL_PYTHON_PREFIX}/bin/pip install"
ENVTOOL = "/usr/bin/python3 -I -S /usr/local/lib/binderlite/envtool.py"
GENERATED_IN_IMAGE = "/srv/binderlite"
KERNEL_PREFIX = "/srv/kernel"
NB_USER = "jovyan"  # the notebook user every image has, as repo2docker's
NB_UID = DEFAULT_NB_UID
# The last virtualenv that makes Python 2 environments; it carries pip, setuptools and wheel for them.
PYTHON2_VIRTUALENV = "virtualenv<20.22"


@dataclass(frozen=True)
class BuildOptions:
    """What a site configures about builds (from Settings)."""

    ca_bundle: str
    generated_dir: str
    tooling_specs: tuple[str, ...]
    uv_binary: str
    index_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    base_images: tuple[LocalBase, ...] = field(default_factory=tuple)  # base_image first
    envtool: str = str(Path(__file__).with_name("envtool.py"))
    jupyter_legacy: str = str(Path(__file__).with_name("jupyter_legacy.py"))
    # jupyterhub's requires-python, and the spec for a Python outside it (the newest release that runs there)
    hub_requires_python: str = ""
    hub_spec_for_older_python: str = ""
    stages: StageImages | None = None  # where the shared stages are found or made (builds/stages.py)
    # the repository's packages stage installs from the workshop's local index instead (workshop/index.py);
    # only there, so the shared stages and the image keep the configured index
    mirror_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def tooling_specs(options: BuildOptions, server_python: str) -> tuple[list[str], bool]:
    """The tooling venv's requirements for ``server_python``, and whether jupyterhub's had to be older."""
    specs = list(options.tooling_specs)
    hub = options.hub_requires_python
    older = bool(hub and options.hub_spec_for_older_python and not SpecifierSet(hub).contains(server_python + ".0"))
    if older:
        specs[-1] = options.hub_spec_for_older_python
    return specs, older


def ensure_shared_stages(
    options: BuildOptions, image: LocalBase, server_python: str, kernel: bool, build_args: dict[str, str]
) -> tuple[str, str]:
    """The ids of the tooling and packages stage images for ``image`` and ``server_python``, made if missing."""
    if options.stages is None:
        raise RuntimeError("BuildOptions.stages is not set: no way to find or make the shared stages")
    uid = build_args.get("NB_UID", str(NB_UID))
    bins = ([f"{KERNEL_PREFIX}/bin"] if kernel else []) + ["/srv/venv/bin"]
    prelude = jinja2.Template(PRELUDE).render(
        kernel_prefix=KERNEL_PREFIX if kernel else "/srv/venv",
        path_prefix="".join(b + ":" for b in bins),
        ca_file=CA_FILE,
        uv_file=UV_FILE,
        index_env=list(options.index_env),
    )
    args = {"NB_USER": build_args.get("NB_USER", NB_USER), "NB_UID": uid}
    specs, _ = tooling_specs(options, server_python)
    tooling = Stage(
        kind="tooling",
        dockerfile=jinja2.Template(TOOLING_STAGE).render(
            base_id=image.image_id,
            prelude=prelude,
            uid=uid,
            server_python=server_python,
            tooling_specs=" ".join(shell_quote(s) for s in specs),
            jupyter_legacy_file=JUPYTER_LEGACY_FILE,
        ),
        files={CA_FILE: options.ca_bundle, UV_FILE: options.uv_binary, JUPYTER_LEGACY_FILE: options.jupyter_legacy},
        build_args=args,
        describe=f"the tooling (JupyterLab on Python {server_python}) for {image.name}",
    )
    tooling_id = options.stages.ensure(tooling)
    packages = Stage(
        kind="packages",
        dockerfile=jinja2.Template(PACKAGES_STAGE).render(
            tooling_id=tooling_id,
            toolchain_id=image.toolchain_id or image.image_id,
            prelude=prelude,
            uid=uid,
            envtool_file=ENVTOOL_FILE,
        ),
        files={CA_FILE: options.ca_bundle, UV_FILE: options.uv_binary, ENVTOOL_FILE: options.envtool},
        build_args=args,
        describe=f"the build stage (toolchain and tooling, Python {server_python}) for {image.name}",
    )
    return tooling_id, options.stages.ensure(packages)


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

    def python_request(self) -> PythonRequest:
        """The version the repository asks for, and the file that asks.

        As repo2docker: environment.yml's ``python`` wins, then Pipfile.lock's
        and Pipfile's ``python_version``, then runtime.txt (``python-X.Y``);
        beside repo2docker, pyenv's ``.python-version`` last. A file that names
        no version lets the next one speak. Only a version (``X`` or ``X.Y``)
        comes out of any of them.
        """
        conversion = self._conversion()
        sources = []
        if conversion.python_version is not None:
            sources.append((conversion.python_version, self._conversion_source()))
        name, version, _ = self.runtime
        if name == "python":
            sources.append((version, "runtime.txt"))
        pyenv = self.binder_path(".python-version")
        if os.path.exists(pyenv):
            with open_guess_encoding(pyenv) as fh:
                sources.append(((fh.read().split() or [""])[0], ".python-version"))
        requires = self._requires_python()
        for text, source in sources:
            version = major_minor(text)
            if version:
                return PythonRequest(version, source, requires)
            log.warning(f"binderlite: {source} asks for Python {text!r}, which is not a version; ignored.\n")
        return PythonRequest(None, "default", requires)

    def _requires_python(self) -> str | None:
        """pyproject.toml's requires-python (read only outside a binder folder, as repo2docker)."""
        if self.binder_dir or not os.path.exists("pyproject.toml"):
            return None
        with open("pyproject.toml", "rb") as fh:
            value = tomllib.load(fh).get("project", {}).get("requires-python")
        return str(value) if value else None

    def _conversion_source(self) -> str:
        if os.path.exists(self.binder_path("environment.yml")):
            return "environment.yml"
        return "Pipfile.lock" if os.path.exists(self.binder_path("Pipfile.lock")) else "Pipfile"

    def candidate_images(self) -> tuple[LocalBase, ...]:
        """The base images this build may start from (the default first)."""
        return self.options.base_images

    @lru_cache
    def python_choice(self) -> PythonChoice:
        """The Python this build uses (``pythons.choose_python`` over ``candidate_images``)."""
        images = self.candidate_images()
        offers = [
            PythonOffer(version, image.name, image.pythons[0] if version.startswith("2") else version)
            for image in images
            for version in image.pythons
            if version.startswith("3") or (version.startswith("2") and image.pythons[0].startswith("3"))
        ]
        default = images[0].pythons[0] if images and images[0].pythons else ""
        return choose_python(self.python_request(), offers, default)

    def _image(self) -> LocalBase:
        return next(i for i in self.candidate_images() if i.name == self.python_choice().offer.image)

    def _is_python_package(self) -> bool:
        if self.binder_dir:
            return False
        if os.path.exists("setup.py"):
            return True
        if os.path.exists("pyproject.toml"):
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
        return dict(self._generated_files())  # the rest comes with the shared stages

    @lru_cache
    def get_preassemble_script_files(self) -> dict[str, str]:
        files = {}
        req = self._requirements_file()
        if req and not self._is_python_package() and not self._requirements_are_local():
            files[req] = req
        req3 = self.binder_path("requirements3.txt")
        if self.python_choice().separate_kernel and os.path.exists(req3):
            files[req3] = req3
        return files

    def _apt_script(self) -> str:
        """apt.txt's packages as a root step; only package names reach it (``check_apt_packages``)."""
        try:
            with open_guess_encoding(self.binder_path("apt.txt")) as fh:
                packages = check_apt_packages(fh.read())
        except FileNotFoundError:
            return ""
        if not packages:
            return ""
        names = " ".join(shell_quote(p) for p in sorted(packages))
        return (
            "apt-get -qq update && "
            f"apt-get install --yes --no-install-recommends {names} && "
            "apt-get -qq purge && apt-get -qq clean && rm -rf /var/lib/apt/lists/*"
        )

    def _install(self, what: str, args: str, into_kernel: bool | None = None) -> tuple[str, str]:
        """A step installing ``args`` (e.g. ``-r requirements.txt``) that fails with one line saying why."""
        choice = self.python_choice()
        kernel = choice.separate_kernel if into_kernel is None else into_kernel
        python = choice.version if kernel else choice.offer.server_version
        installer = KERNEL_PIP if kernel else VENV_PIP
        extra = choice.substitution() if kernel or not choice.separate_kernel else ""
        return (
            "${NB_USER}",
            f"{ENVTOOL} install {python} {shell_quote(what)} {shell_quote(extra)} -- {installer} {args}",
        )

    @lru_cache
    def get_preassemble_scripts(self) -> list[tuple[str, str]]:
        scripts = []
        if self._generated_files():
            target = f"{GENERATED_IN_IMAGE}/converted-requirements.txt"
            scripts.append(self._install(self._conversion_source(), f"-r {target}"))
        req3 = self.binder_path("requirements3.txt")
        if req3 in self.get_preassemble_script_files():
            scripts.append(self._install(req3, f"-r {shell_quote(req3)}", into_kernel=False))
        req = self._requirements_file()
        if req in self.get_preassemble_script_files():
            scripts.append(self._install(req, f"-r {shell_quote(req)}"))
        return scripts

    @lru_cache
    def get_assemble_scripts(self) -> list[tuple[str, str]]:
        scripts = []
        req = self._requirements_file()
        if req and req not in self.get_preassemble_script_files():
            scripts.append(self._install(req, f"-r {shell_quote(req)}"))
        if self._is_python_package():
            what = "setup.py" if os.path.exists("setup.py") else "pyproject.toml"
            scripts.append(self._install(f"the repository itself ({what})", "."))
        return scripts

    def get_image_prepare_scripts(self) -> list[tuple[str, str]]:
        """Steps of the image's own stage before the repository is copied in (after apt.txt)."""
        return []

    def get_image_assemble_scripts(self) -> list[tuple[str, str]]:
        """Steps of the image's own stage after the repository is copied in (before postBuild)."""
        return []

    def _kernel_setup(self) -> str:
        """A Python 2 environment with ipykernel, registered as a kernel of the JupyterLab venv (as repo2docker)."""
        choice = self.python_choice()
        if not choice.separate_kernel:
            return ""
        python = f"/usr/bin/python{choice.version}"
        return (
            f"uv venv --quiet --python /usr/bin/python{choice.offer.server_version} /tmp/virtualenv && "
            f"uv pip install --quiet --python /tmp/virtualenv/bin/python {shell_quote(PYTHON2_VIRTUALENV)} && "
            f"/tmp/virtualenv/bin/virtualenv --quiet --python {python} ${{KERNEL_PYTHON_PREFIX}} && "
            "rm -rf /tmp/virtualenv && "
            f"{ENVTOOL} install {choice.version} 'the Python {choice.version} kernel' '' -- {KERNEL_PIP} ipykernel && "
            "${KERNEL_PYTHON_PREFIX}/bin/python -m ipykernel install --prefix ${VENV_DIR} "
            f"--name python{choice.version.split('.')[0]} --display-name 'Python {choice.version}'"
        )

    @lru_cache
    def _warn_older_hub(self) -> None:
        server = self.python_choice().offer.server_version
        specs, older = tooling_specs(self.options, server)
        if older:
            log.warning(
                f"binderlite: jupyterhub {self.options.tooling_specs[-1]} needs Python "
                f"{self.options.hub_requires_python}; this image's JupyterLab runs on Python {server}, "
                f"so it gets {specs[-1]!r} (the newest that runs there).\n"
            )

    @lru_cache
    def _announce(self) -> None:
        """The build's choices, in the log once (repo2docker renders the Dockerfile twice)."""
        image = self._image()
        log.info(f"binderlite: {self.python_choice().note()}; base image {image.name}.\n")
        if image.toolchain_id is None:
            log.warning(
                f"binderlite: {image.name} has no toolchain image (setting toolchain_packages; "
                "`binderlite base-image` makes it): packages that need a compiler will not build.\n"
            )

    @lru_cache
    def _stage_ids(self, user: str, uid: str) -> tuple[str, str]:
        choice = self.python_choice()
        args = {"NB_USER": user, "NB_UID": uid}
        server, kernel = choice.offer.server_version, choice.separate_kernel
        return ensure_shared_stages(self.options, self._image(), server, kernel, args)

    def render(self, build_args: dict | None = None) -> str:
        build_args = build_args or {}
        self._announce()
        self._warn_older_hub()
        uid = str(build_args.get("NB_UID", NB_UID))
        tooling_id, packages_id = self._stage_ids(str(build_args.get("NB_USER", NB_USER)), uid)
        context_names = {src: self.generate_build_context_filename(src)[0] for src in self.get_build_script_files()}
        generated = [(context_names[src], dst) for src, dst in sorted(self._generated_files().items())]
        return jinja2.Template(TEMPLATE).render(
            tooling_id=tooling_id,
            packages_id=packages_id,
            mirror_env=list(self.options.mirror_env),
            kernel_setup=self._kernel_setup(),
            apt_script=self._apt_script(),
            generated_files=generated,
            uid=uid,
            preassemble_files=sorted(self.get_preassemble_script_files().items()),
            preassemble_directives=_directives(self.get_preassemble_scripts()),
            assemble_directives=_directives(self.get_assemble_scripts()),
            image_prepare_directives=_directives(self.get_image_prepare_scripts(), user="root"),
            image_assemble_directives=_directives(self.get_image_assemble_scripts()),
            labels=self.get_labels(),
            post_build_scripts=self.get_post_build_scripts(),
            start_script=self.get_start_script(),
        )


def _directives(scripts: list[tuple[str, str]], user: str = "${NB_USER}") -> list[str]:
    """``USER``/``RUN`` lines for (user, script) pairs, as repo2docker renders them, from ``user``."""
    lines, last_user = [], user
    for user, script in scripts:
        if user != last_user:
            lines.append(f"USER {user}")
            last_user = user
        lines.append(f"RUN {script.strip()}")
    return lines
