"""``binderlite workshop export FILE``: the prepared workshop and everything a laptop needs, as one bundle.

Each part (see ``bundle.py``) is made in a folder beside FILE, its SHA-256
written to the checksum file, and the parts are put in one plain tar,
written under a temporary name and renamed at the end, so a bundle never
exists half-written. The images are one ``docker save`` of every image the
workshop needs: its prepared images, the base and stage images of the
manifest, and binderlite's base images with their toolchain images.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import docker.errors

from binderlite import __version__
from binderlite.builds.baseimage import base_image_names, toolchain_image_name
from binderlite.dockerutil import docker_cli_env, docker_client, local_image_exists
from binderlite.errors import BadInputError, UnavailableError
from binderlite.settings import Settings
from binderlite.workshop import bundle
from binderlite.workshop.debs import download_closure, wanted_packages
from binderlite.workshop.manifest import Manifest, load_manifest
from binderlite.workshop.nodeproxy import pack_proxy
from binderlite.workshop.wheels import build_wheels, source_tree

BUNDLE_FORMAT = 1
SAVE_TIMEOUT = 3600


def workshop_images(settings: Settings, manifest: Manifest) -> list[str]:
    """The manifest's images and binderlite's base images with their toolchain images; each must exist here."""
    client = docker_client(settings)
    names = manifest.all_images()
    for base in base_image_names(settings):
        names.append(base)
        try:
            names.append(toolchain_image_name(client.images.get(base).id))
        except docker.errors.ImageNotFound:
            pass  # reported as missing below
    names = list(dict.fromkeys(names))
    missing = [name for name in names if not local_image_exists(client, name)]
    toolchains = [name for name in missing if name.startswith("binderlite/toolchain:")]
    missing = [name for name in missing if name not in toolchains]  # none is made when toolchain_packages is empty
    if missing:
        raise BadInputError(
            f"These images of the workshop are not on this machine: {', '.join(missing)}. "
            "Run `binderlite base-image` and prepare the workshop again, then export."
        )
    return [name for name in names if name not in toolchains]


def save_images(settings: Settings, names: list[str], out: Path) -> None:
    """One ``docker save`` of ``names`` (layers shared between images are stored once)."""
    command = ["docker", "save", "--output", str(out), *names]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=SAVE_TIMEOUT, env=docker_cli_env(settings)
        )
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"docker save did not finish within {SAVE_TIMEOUT} s.") from None
    if done.returncode != 0:
        raise UnavailableError(f"docker save failed: {done.stderr.strip()[-800:]}")


def tar_folder(folder: Path, out: Path) -> None:
    """``folder``'s plain files and folders into ``out``, named relative to it; a link in it is refused."""
    with tarfile.open(out, "w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise BadInputError(f"{path} is a link or a device; a workshop bundle carries plain files only.")
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)


def _tar_files(files: list[Path], out: Path) -> None:
    with tarfile.open(out, "w") as tar:
        for path in files:
            tar.add(path, arcname=path.name)


def export_bundle(
    settings: Settings, out: Path, with_install: bool = True, echo: Callable[[str], None] = print
) -> bundle.Report:
    """Write the workshop bundle to ``out``; ``with_install=False`` leaves out install.sh and what it installs."""
    manifest = load_manifest(settings)
    if manifest is None:
        raise BadInputError(
            f"No workshop is prepared here ({settings.workshop_dir} has no manifest.json); "
            "run `binderlite workshop prepare LINKS_FILE` first."
        )
    out = out.resolve()
    if out.is_dir():
        raise BadInputError(f"{out} is a folder; give the bundle's file name, e.g. {out / 'workshop.tar'}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = bundle.Report()
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".binderlite-export-", dir=out.parent) as work:
        parts = Path(work)
        _make_parts(settings, manifest, parts, with_install, report, echo)
        started = time.monotonic()
        sums = {part: bundle.sha256_file(parts / part) for part in bundle.PARTS if (parts / part).exists()}
        partial = parts / "bundle.tar"
        with tarfile.open(partial, "w") as tar:
            _add_bytes(tar, bundle.CHECKSUMS, bundle.checksum_text(sums).encode())
            for part in bundle.PARTS:
                if part in sums:
                    tar.add(parts / part, arcname=f"{bundle.FOLDER}/{part}", filter=_owned_by_root)
        os.replace(partial, out)
        report.seconds["checksums and bundle"] = time.monotonic() - started
    report.seconds["export"] = time.monotonic() - begun
    return report


def _make_parts(
    settings: Settings, manifest: Manifest, parts: Path, with_install: bool, report: bundle.Report, echo
) -> None:
    def step(label: str, make: Callable[[], object]) -> None:
        started = time.monotonic()
        make()
        report.seconds[label] = time.monotonic() - started

    report.images = workshop_images(settings, manifest)  # first: a missing image stops the export at once
    (parts / bundle.MANIFEST).write_text(manifest.to_json())
    shutil.copyfile(settings.ca_bundle, parts / bundle.CA)  # offline builds name the carried stages with it
    for part, folder in bundle.folder_parts(settings).items():
        if folder.is_dir():
            step(part, lambda folder=folder, part=part: tar_folder(folder, parts / part))
        else:
            report.absent.append(part)
            echo(f"{folder} does not exist: the bundle has no {part}")
    if with_install:
        tree = source_tree()
        install_sh = resources.files("binderlite.workshop").joinpath("install.sh").read_bytes()
        (parts / bundle.INSTALLER).write_bytes(install_sh)
        (parts / bundle.INSTALLER).chmod(0o755)
        step("wheels", lambda: _tar_files(build_wheels(parts / "wheels", echo), parts / bundle.WHEELS))
        debs = wanted_packages(tree / "scripts" / "debian-packages.txt")
        step("Debian packages", lambda: _tar_files(download_closure(debs, parts / "debs", echo), parts / bundle.DEBS))
        step("proxy (npm)", lambda: pack_proxy(parts / bundle.PROXY, echo))
        for folder in ("wheels", "debs"):
            shutil.rmtree(parts / folder)
    else:
        report.absent += [bundle.INSTALLER, bundle.WHEELS, bundle.DEBS, bundle.PROXY]
    echo(f"Saving {len(report.images)} images in one docker save: {', '.join(report.images)}")
    step("docker save", lambda: save_images(settings, report.images, parts / bundle.IMAGES))
    info = {
        "format": BUNDLE_FORMAT,
        "binderlite": __version__,
        "created": time.time(),
        "images": report.images,
        "links": [entry.link for entry in manifest.links],
        "absent": report.absent,
    }
    (parts / bundle.INFO).write_text(json.dumps(info, indent=2) + "\n")
    for part in bundle.PARTS:
        if (parts / part).exists():
            report.sizes[part] = (parts / part).stat().st_size


def _add_bytes(tar: tarfile.TarFile, part: str, data: bytes) -> None:
    info = tarfile.TarInfo(f"{bundle.FOLDER}/{part}")
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
