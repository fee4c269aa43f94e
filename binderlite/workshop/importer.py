"""``binderlite workshop import FILE``: check a bundle, then load its images and put its workshop in place.

Nothing is loaded before ``bundle.verify`` has read the whole bundle and
found every part safe and matching its checksum. Then one more pass loads
the images (``docker load``, streamed from the bundle) and unpacks the
mirror and the bare git copies into new folders under ``<workshop_dir>``
that replace the old ones only once complete, hashing again as it reads,
and the manifest is written last: binderlite is then ready to ``up``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from binderlite.builds.packageindex import carried_ca_bundle
from binderlite.builds.pipeline import image_for
from binderlite.dockerutil import docker_cli_env, docker_client, local_image_exists
from binderlite.errors import BinderliteError, UnavailableError
from binderlite.settings import Settings
from binderlite.workshop import bundle
from binderlite.workshop.bundle import BundleError
from binderlite.workshop.manifest import Manifest, save_manifest

LOAD_TIMEOUT = 3600


def import_bundle(settings: Settings, path: Path, echo: Callable[[str], None] = print) -> bundle.Report:
    """Verify the bundle at ``path``, then load and place everything it holds; return what it held."""
    if not path.is_file():
        raise BundleError(f"{path} is not a file; give the workshop bundle made by `binderlite workshop export`.")
    report = bundle.Report()
    started = time.monotonic()
    verified = bundle.verify(path, echo)
    manifest = _manifest(verified.texts[bundle.MANIFEST])
    report.seconds["verify"] = time.monotonic() - started
    report.sizes = dict(verified.sizes)
    report.absent = [part for part in bundle.PARTS if part not in verified.sizes]
    settings.workshop_dir.mkdir(parents=True, exist_ok=True)
    folders = bundle.folder_parts(settings)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=settings.workshop_dir) as work:
        staged: dict[str, Path] = {}
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                part = bundle.part_of(member)
                raw = tar.extractfile(member)
                if raw is None or part not in (bundle.IMAGES, *folders):
                    continue
                begun = time.monotonic()
                if part == bundle.IMAGES:
                    echo(f"Loading the images ({bundle.human_size(member.size)}) with docker load")
                    digest = _load_images(settings, raw)
                    report.seconds["docker load"] = time.monotonic() - begun
                else:
                    staged[part] = Path(work) / folders[part].name
                    digest = _unpack(part, raw, staged[part])
                    report.seconds[f"unpack {part}"] = time.monotonic() - begun
                if digest != verified.sums[part]:
                    raise BundleError(f"The bundle's {part} changed while it was being imported; import it again.")
        for part, folder in staged.items():
            _replace(folder, folders[part])
        for part, folder in folders.items():
            if part not in staged:
                echo(f"The bundle has no {part}: {folder} is left as it was")
    if bundle.CA in verified.texts:
        carried_ca_bundle(settings).write_text(verified.texts[bundle.CA])
    save_manifest(settings, manifest)
    report.images = _check_images(settings, manifest, verified.texts.get(bundle.INFO, "{}"))
    for line in tag_for_here(settings, manifest):
        echo(line)
    report.seconds["import"] = time.monotonic() - started
    return report


def _manifest(text: str) -> Manifest:
    try:
        return Manifest.from_json(text, "the bundle's manifest.json")
    except BinderliteError as exc:
        raise BundleError(exc.message) from None


def _load_images(settings: Settings, raw: IO[bytes]) -> str:
    """Stream ``raw`` into ``docker load``; return its SHA-256."""
    digest = hashlib.sha256()
    try:
        loader = subprocess.Popen(
            ["docker", "load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=docker_cli_env(settings),
        )
    except FileNotFoundError:
        raise UnavailableError("Importing a workshop needs the docker command (apt-get install docker.io).") from None
    assert loader.stdin is not None
    try:
        while chunk := raw.read(bundle.CHUNK):
            digest.update(chunk)
            loader.stdin.write(chunk)
        out, err = loader.communicate(timeout=LOAD_TIMEOUT)
    except (BrokenPipeError, subprocess.TimeoutExpired):
        loader.kill()
        out, err = loader.communicate()
    if loader.returncode != 0:
        raise UnavailableError(f"docker load failed: {err.decode(errors='replace').strip()[-800:]}")
    return digest.hexdigest()


def _unpack(part: str, raw: IO[bytes], dest: Path) -> str:
    """Unpack an inner tar's plain files and folders (each checked again) into ``dest``; return its SHA-256."""
    reader = bundle.HashingReader(raw)
    dest.mkdir(mode=0o755)
    with tarfile.open(fileobj=reader, mode="r|*") as inner:
        for member in inner:
            bundle.check_inner_member(part, member)
            target = dest / os.path.normpath(member.name)
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            source = inner.extractfile(member)
            assert source is not None
            try:
                with open(target, "xb") as fh:
                    shutil.copyfileobj(source, fh, bundle.CHUNK)
            except (FileExistsError, IsADirectoryError, NotADirectoryError):
                raise BundleError(f"The bundle's {part} holds {member.name!r} twice; refusing the bundle.") from None
            target.chmod(0o755 if member.mode & 0o111 else 0o644)
    return reader.drain()


def _replace(new: Path, old: Path) -> None:
    """Put folder ``new`` where ``old`` is, removing the old one once the new one is in place."""
    retired = old.with_name(f".{old.name}-old")
    shutil.rmtree(retired, ignore_errors=True)
    if old.exists():
        os.replace(old, retired)
    os.replace(new, old)
    shutil.rmtree(retired, ignore_errors=True)


def tag_for_here(settings: Settings, manifest: Manifest) -> list[str]:
    """Give each prepared image the name this machine's settings give its link (registry, image_prefix)."""
    client = docker_client(settings)
    said = []
    for entry in manifest.links:
        here = image_for(settings, entry.resolved())
        if here != entry.image:
            repository, _, tag = here.rpartition(":")
            client.images.get(entry.image).tag(repository, tag)
            said.append(f"Tagged {entry.image} as {here}, its name with this machine's settings")
    return said


def _check_images(settings: Settings, manifest: Manifest, info_text: str) -> list[str]:
    """The bundle's images, each now on the daemon; refuse if one is not."""
    try:
        names = [str(name) for name in json.loads(info_text).get("images", [])]
    except (ValueError, AttributeError):
        names = []
    names = list(dict.fromkeys(names + manifest.all_images()))
    client = docker_client(settings)
    missing = [name for name in names if not local_image_exists(client, name)]
    if missing:
        raise BundleError(f"The bundle's images.tar did not hold {', '.join(missing)}; export the workshop again.")
    return names
