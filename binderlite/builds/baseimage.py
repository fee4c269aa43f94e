"""The base images builds start from, and their toolchain images: find them, load them, pull them, or make them.

Builds never depend on Docker Hub. For ``base_image`` and each of
``python_base_images``, in order: the image is already there; a configured
``docker save`` tarball (which may hold them all) is loaded; a pull, but only
of a fully qualified, pinned reference (``registry.example.org/base@sha256:…``)
that the administrator configured — never an unqualified name such as
``binderlite/base:bookworm``, which Docker would look up on Docker Hub, where
whoever owns that namespace would supply every image's base; otherwise a
Debian base is made locally with ``debootstrap --variant=minbase`` (the release
its tag names; bookworm for a ``base_image`` whose tag names none) and
``docker import``ed, labelled with the Pythons it has. Each carries Python
with ``venv`` and the CA certificates, so builds from it need only the
package index.

Each base image gets a toolchain image, ``binderlite/toolchain:<12 hex of the
base's id>``: the base plus ``toolchain_packages`` and its Pythons' headers,
installed with apt while online. Builds install a repository's packages in a
stage made from it and copy only the result into the image (see
``buildpacks/template.py``). Naming it by the base's id means it can never
belong to another base. Everything here is made ahead, so builds need no apt
mirror; ``docker save`` of the names ``binderlite base-image`` prints gives
an offline machine the same. R builds start from an R base per Debian
release (``ensure_r_base_image``), made the same way with R's Debian
packages added.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker.errors
from docker import DockerClient

from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BaseImageMissingError
from binderlite.settings import Settings

DEBIAN_SUITE = "bookworm"
DEBIAN_SUITES = ("bullseye", "bookworm", "trixie", "forky")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_SCRIPTS = "/usr/share/debootstrap/scripts"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "less", "unzip", "gettext-base")
SUITE_PACKAGES = {"bullseye": ("python2.7",)}  # the last Debian release with Python 2: a Python 2 kernel
PYTHONS_LABEL = "org.binderlite.pythons"  # "3.9 2.7": the image's Pythons, its python3 first
TOOLCHAIN_BASE_LABEL = "org.binderlite.toolchain-base"
TOOLCHAIN_PACKAGES_LABEL = "org.binderlite.toolchain-packages"
TOOLCHAIN_REPOSITORY = "binderlite/toolchain"
BASE_SONAMES = "/usr/local/share/binderlite/base-sonames.txt"  # in a toolchain image: the base's libraries
PYTHON_BINARY = re.compile(r"^python(\d+\.\d+)$")


@dataclass(frozen=True)
class LocalBase:
    """A base image on the daemon: its id, its Pythons (python3's first) and its toolchain image's id, if any."""

    name: str
    image_id: str
    pythons: tuple[str, ...]
    toolchain_id: str | None


def base_image_names(settings: Settings) -> list[str]:
    """``base_image`` first, then ``python_base_images``, each once."""
    names = [settings.base_image]
    for name in (part.strip() for part in settings.python_base_images.split(",")):
        if name and name not in names:
            names.append(name)
    return names


def ensure_base_image(settings: Settings, log: Callable[[str], None] = print) -> str:
    """Make sure every base image and its toolchain image exist; return how ``base_image`` got there."""
    client = docker_client(settings)
    names = base_image_names(settings)
    loaded = False
    if settings.base_image_tarball and not all(local_image_exists(client, n) for n in names):
        log(f"Loading base images from {settings.base_image_tarball}")
        with open(settings.base_image_tarball, "rb") as fh:
            client.images.load(fh.read())
        loaded = True
    how = {name: _ensure_one(client, name, settings, loaded, log, default=name == names[0]) for name in names}
    if settings.toolchain_packages.split():
        for name in names:
            tool = ensure_toolchain_image(client, name, settings.toolchain_packages.split(), log)
            log(f"{name}: toolchain image {tool}")
    return how[names[0]]


def _ensure_one(client: DockerClient, name: str, settings: Settings, loaded: bool, log, default: bool) -> str:
    if local_image_exists(client, name):
        return "loaded" if loaded else "present"
    if loaded:
        raise BaseImageMissingError(
            f"{settings.base_image_tarball} did not contain {name}; "
            "check the tarball with `docker load -i` and the base_image and python_base_images settings."
        )
    if is_pinned_reference(name):
        log(f"Pulling base image {name}")
        try:
            client.images.pull(name)
            return "pulled"
        except docker.errors.DockerException as exc:
            raise BaseImageMissingError(
                f"Could not pull the base image {name} ({exc.__class__.__name__}); check the registry, "
                "or set base_image_tarball."
            ) from None
    suite = suite_of(name)
    if suite is None and not default:
        raise BaseImageMissingError(
            f"{name} is missing and its tag names no Debian release ({', '.join(DEBIAN_SUITES)}), so it cannot "
            "be made here: load it from base_image_tarball, or fix python_base_images."
        )
    log(f"{name} is not a pinned reference to a registry, so it is not pulled; building a Debian base locally")
    build_debian_base(name, log, suite or DEBIAN_SUITE)
    return "built"


def suite_of(name: str) -> str | None:
    """The Debian release an image's tag names (``binderlite/base:trixie`` → trixie), or None."""
    tag = name.rsplit("/", 1)[-1].partition("@")[0].rpartition(":")[2]
    return tag if tag in DEBIAN_SUITES else None


def is_pinned_reference(name: str) -> bool:
    """True for ``host[:port]/path@sha256:<64 hex>``: a registry named explicitly and a digest."""
    repository, at, digest = name.partition("@")
    first, slash, _ = repository.partition("/")
    names_registry = bool(slash) and ("." in first or ":" in first or first == "localhost")
    return names_registry and bool(at) and bool(re.fullmatch(r"sha256:[0-9a-f]{64}", digest))


def build_debian_base(name: str, log: Callable[[str], None] = print, suite: str = DEBIAN_SUITE) -> None:
    """debootstrap a minimal Debian ``suite`` with Python into a folder and import it as ``name``."""
    debootstrap_image(name, suite, BASE_PACKAGES + SUITE_PACKAGES.get(suite, ()), log)


# ---- R: one base image per Debian release, with R from Debian ---------------------------------
R_BASE_IMAGE = "binderlite/base-r:{suite}"
# R as Debian packages it, the recommended packages every R install has, the compilers
# install.packages() needs for CRAN's source packages, and IRkernel (its kernelspec is in
# /usr/share/jupyter, where JupyterLab looks).
R_PACKAGES = ("r-base-core", "r-base-dev", "r-recommended", "r-cran-irkernel")


def ensure_r_base_image(settings: Settings, suite: str, log: Callable[[str], None] = print) -> LocalBase:
    """The R base image for Debian ``suite`` (made now if missing) with its Pythons and toolchain image.

    It is the local base (Python, venv, CA certificates) plus ``R_PACKAGES``,
    made with debootstrap from Debian's mirror once per release; builds that
    ask for it meanwhile wait for the one that makes it. Its toolchain image
    (Python's headers beside R's compilers) is made the same way as a base
    image's, so a repository's Python packages build in an R image too.
    """
    name = R_BASE_IMAGE.format(suite=suite)
    client = docker_client(settings)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.run_dir / f"base-r-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not local_image_exists(client, name):
            log(f"Making {name} (once): Debian {suite} with R from Debian's packages, by debootstrap\n")
            started = time.monotonic()
            debootstrap_image(name, suite, BASE_PACKAGES + R_PACKAGES, log)
            log(f"Made {name} in {time.monotonic() - started:.0f} s\n")
        if settings.toolchain_packages.split():
            ensure_toolchain_image(client, name, settings.toolchain_packages.split(), log)
    return local_base(client, name, bool(settings.toolchain_packages.split()))


def debootstrap_image(name: str, suite: str, packages: tuple[str, ...], log: Callable[[str], None]) -> None:
    """debootstrap ``suite`` with ``packages`` into a folder and import it as ``name``, labelled with its Pythons."""
    if shutil.which("debootstrap") is None:
        raise BaseImageMissingError(
            f"debootstrap is not installed, so {name} cannot be made here: apt-get install debootstrap, "
            f"or `docker load` an image named {name} (base_image_tarball)."
        )
    with tempfile.TemporaryDirectory(prefix="binderlite-base-") as root:
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, root, DEBIAN_MIRROR]
        if not os.path.exists(os.path.join(DEBOOTSTRAP_SCRIPTS, suite)):
            cmd.append(os.path.join(DEBOOTSTRAP_SCRIPTS, "sid"))  # a release newer than this debootstrap
        log("Running " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-10:] + proc.stderr.splitlines()[-10:])
            raise BaseImageMissingError(f"debootstrap of {name} failed (exit {proc.returncode}):\n{tail}")
        subprocess.run(["rm", "-rf", f"{root}/var/cache/apt/archives", f"{root}/var/lib/apt/lists"])
        os.chmod(root, 0o755)  # the image's "/" (TemporaryDirectory makes it 0700, which breaks non-root steps)
        pythons = pythons_in(os.listdir(os.path.join(root, "usr/bin")), _python3_target(root))
        log(f"Importing {root} as {name} (Python {', '.join(pythons)})")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        change_cmd = 'CMD ["/bin/bash"]'
        change_label = f'LABEL {PYTHONS_LABEL}="{" ".join(pythons)}"'
        imp = subprocess.run(
            ["docker", "import", "--change", change_cmd, "--change", change_label, "-", name],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imp.returncode != 0:
            raise BaseImageMissingError(f"docker import of {name} failed: {imp.stderr.strip()}")


def _python3_target(root: str) -> str:
    return os.path.basename(os.path.realpath(os.path.join(root, "usr/bin/python3")))


def pythons_in(binaries: list[str], python3: str) -> tuple[str, ...]:
    """``("3.9", "2.7")`` from the names in /usr/bin and what ``python3`` points to: python3's version first."""
    versions = sorted({m.group(1) for b in binaries if (m := PYTHON_BINARY.match(b))}, key=_version_key)
    first = PYTHON_BINARY.match(python3)
    head = [first.group(1)] if first and first.group(1) in versions else []
    return tuple(head + [v for v in reversed(versions) if v not in head])


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def toolchain_image_name(base_id: str) -> str:
    return f"{TOOLCHAIN_REPOSITORY}:{base_id.removeprefix('sha256:')[:12]}"


_pythons_by_image_id: dict[str, tuple[str, ...]] = {}  # an image id names its content: never stale


def image_pythons(client: DockerClient, image) -> tuple[str, ...]:
    """The Pythons of an image: its label when binderlite made it, else a look inside (no network), once."""
    label = (image.labels or {}).get(PYTHONS_LABEL, "")
    if label:
        return tuple(v for v in label.split() if re.fullmatch(r"\d+\.\d+", v))
    if image.id not in _pythons_by_image_id:
        _pythons_by_image_id[image.id] = _look_inside(client, image)
    return _pythons_by_image_id[image.id]


def _look_inside(client: DockerClient, image) -> tuple[str, ...]:
    out = client.containers.run(
        image.id,
        ["sh", "-c", "ls /usr/bin; echo @; readlink -f /usr/bin/python3"],
        entrypoint=[],
        network_disabled=True,
        remove=True,
    ).decode()
    names, _, python3 = out.partition("@")
    return pythons_in(names.split(), os.path.basename(python3.strip()))


def ensure_toolchain_image(client: DockerClient, name: str, packages: list[str], log: Callable[[str], None]) -> str:
    """The toolchain image of base image ``name``, made from it with apt when missing or made for other packages."""
    base = client.images.get(name)
    tool = toolchain_image_name(base.id)
    wanted = " ".join(sorted(set(packages) | {f"python{v}-dev" for v in image_pythons(client, base)}))
    try:
        if client.images.get(tool).labels.get(TOOLCHAIN_PACKAGES_LABEL) == wanted:
            return tool
    except docker.errors.ImageNotFound:
        pass
    log(f"Making {tool} from {name}: apt-get install {wanted}")
    dockerfile = (
        f"FROM {base.id}\n"
        "ENV DEBIAN_FRONTEND=noninteractive\n"
        f"RUN mkdir -p {os.path.dirname(BASE_SONAMES)} && "
        f"ldconfig -p | sed -n 's/^\\t\\([^ ]*\\) .*/\\1/p' | sort -u > {BASE_SONAMES} && "
        f"apt-get -qq update && apt-get -qq install --yes --no-install-recommends {wanted} > /dev/null && "
        "apt-get -qq clean && rm -rf /var/lib/apt/lists/*\n"
        f'LABEL {TOOLCHAIN_BASE_LABEL}="{base.id}" {TOOLCHAIN_PACKAGES_LABEL}="{wanted}"\n'
    )
    try:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tool, rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)[-2000:]
        raise BaseImageMissingError(
            f"Could not make the toolchain image {tool} (apt-get install {wanted}): {exc.msg}\n{tail}\n"
            "Check the Debian mirror is reachable, or set toolchain_packages to fewer packages (or empty)."
        ) from None
    return tool


def local_base(client: DockerClient, name: str, with_toolchain: bool) -> LocalBase:
    """Base image ``name`` on the daemon: its Pythons, and its toolchain image if one was made for it."""
    image = client.images.get(name)
    toolchain_id = None
    if with_toolchain:
        try:
            tool = client.images.get(toolchain_image_name(image.id))
            toolchain_id = tool.id if tool.labels.get(TOOLCHAIN_BASE_LABEL) == image.id else None
        except docker.errors.ImageNotFound:
            pass
    return LocalBase(name, image.id, image_pythons(client, image), toolchain_id)


def available_base_images(settings: Settings) -> list[LocalBase]:
    """The base images on the daemon (``base_image`` first) with their Pythons and toolchain images."""
    client = docker_client(settings)
    with_toolchain = bool(settings.toolchain_packages.split())
    found = []
    for name in base_image_names(settings):
        try:
            found.append(local_base(client, name, with_toolchain))
        except docker.errors.ImageNotFound:
            continue  # not made here (yet): its Pythons are not offered
    return found
