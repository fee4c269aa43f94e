"""The base image every build starts from: find it, load it, pull it, or make it.

Builds never depend on Docker Hub. In order: the image is already there; a
configured ``docker save`` tarball is loaded; a pull, but only of a fully
qualified, pinned reference (``registry.example.org/base@sha256:…``) that the
administrator configured — never an unqualified name such as
``binderlite/base:bookworm``, which Docker would look up on Docker Hub, where
whoever owns that namespace would supply every image's base; otherwise a
Debian base is made locally with ``debootstrap --variant=minbase`` and
``docker import``ed. The local base carries Python with ``venv`` and the
CA certificates, so builds from it need only the package index. R builds
start from an R base per Debian release (``ensure_r_base_image``), made the
same way with R's Debian packages added.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import docker.errors

from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BaseImageMissingError
from binderlite.settings import Settings

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "less", "unzip", "gettext-base")


def ensure_base_image(settings: Settings, log: Callable[[str], None] = print) -> str:
    """Make sure ``settings.base_image`` exists on the daemon; return how it got there."""
    client = docker_client(settings)
    name = settings.base_image
    if local_image_exists(client, name):
        return "present"
    if settings.base_image_tarball:
        log(f"Loading base image from {settings.base_image_tarball}")
        with open(settings.base_image_tarball, "rb") as fh:
            client.images.load(fh.read())
        if local_image_exists(client, name):
            return "loaded"
        raise BaseImageMissingError(
            f"{settings.base_image_tarball} did not contain {name}; "
            "check the tarball with `docker load -i` and the base_image setting."
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
    log(f"{name} is not a pinned reference to a registry, so it is not pulled; building a Debian base locally")
    build_debian_base(name, log)
    return "built"


def is_pinned_reference(name: str) -> bool:
    """True for ``host[:port]/path@sha256:<64 hex>``: a registry named explicitly and a digest."""
    repository, at, digest = name.partition("@")
    first, slash, _ = repository.partition("/")
    names_registry = bool(slash) and ("." in first or ":" in first or first == "localhost")
    return names_registry and bool(at) and bool(re.fullmatch(r"sha256:[0-9a-f]{64}", digest))


def build_debian_base(name: str, log: Callable[[str], None] = print) -> None:
    """debootstrap a minimal Debian with Python into a folder and import it as ``name``."""
    if shutil.which("debootstrap") is None:
        raise BaseImageMissingError(
            "debootstrap is not installed, so the base image cannot be made locally: "
            "apt-get install debootstrap, or set base_image_tarball."
        )
    with tempfile.TemporaryDirectory(prefix="binderlite-base-") as root:
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_SUITE,
            root,
            DEBIAN_MIRROR,
        ]
        log("Running " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-10:] + proc.stderr.splitlines()[-10:])
            raise BaseImageMissingError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        subprocess.run(["rm", "-rf", f"{root}/var/cache/apt/archives", f"{root}/var/lib/apt/lists"])
        os.chmod(root, 0o755)  # the image's "/" (TemporaryDirectory makes it 0700, which breaks non-root steps)
        log(f"Importing {root} as {name}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", name],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imp.returncode != 0:
            raise BaseImageMissingError(f"docker import failed: {imp.stderr.strip()}")


# ---- R: one base image per Debian release, with R from Debian ---------------------------------
R_BASE_IMAGE = "binderlite/base-r:{suite}"
# R as Debian packages it, the recommended packages every R install has, the compilers
# install.packages() needs for CRAN's source packages, and IRkernel (its kernelspec is in
# /usr/share/jupyter, where JupyterLab looks).
R_PACKAGES = ("r-base-core", "r-base-dev", "r-recommended", "r-cran-irkernel")


def ensure_r_base_image(settings: Settings, suite: str, log: Callable[[str], None] = print) -> str:
    """The name of the R base image for Debian ``suite``: present (made or loaded before), or made now.

    It is the local base (Python, venv, CA certificates) plus ``R_PACKAGES``,
    made with debootstrap from Debian's mirror once per release; builds that
    ask for it meanwhile wait for the one that makes it.
    """
    name = R_BASE_IMAGE.format(suite=suite)
    client = docker_client(settings)
    if local_image_exists(client, name):
        return name
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.run_dir / f"base-r-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if local_image_exists(client, name):
            return name
        log(f"Making {name} (once): Debian {suite} with R from Debian's packages, by debootstrap\n")
        started = time.monotonic()
        debootstrap_image(name, suite, BASE_PACKAGES + R_PACKAGES, log)
        log(f"Made {name} in {time.monotonic() - started:.0f} s\n")
    return name


def debootstrap_image(name: str, suite: str, packages: tuple[str, ...], log: Callable[[str], None]) -> None:
    """debootstrap ``suite`` with ``packages`` into a folder and import it as ``name``."""
    if shutil.which("debootstrap") is None:
        raise BaseImageMissingError(
            f"debootstrap is not installed, so {name} cannot be made: apt-get install debootstrap, "
            f"or `docker load` an image named {name}."
        )
    with tempfile.TemporaryDirectory(prefix="binderlite-base-") as root:
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, root, DEBIAN_MIRROR]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-10:] + proc.stderr.splitlines()[-10:])
            raise BaseImageMissingError(f"debootstrap of {name} failed (exit {proc.returncode}):\n{tail}")
        subprocess.run(["rm", "-rf", f"{root}/var/cache/apt/archives", f"{root}/var/lib/apt/lists"])
        os.chmod(root, 0o755)  # the image's "/" (TemporaryDirectory makes it 0700, which breaks non-root steps)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", name],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imp.returncode != 0:
            raise BaseImageMissingError(f"docker import of {name} failed: {imp.stderr.strip()}")
