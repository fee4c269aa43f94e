"""The build stages every repository on a base shares, made once as images and named by what they hold.

binderlite's Dockerfile has two stages that depend on no repository (see
``buildpacks/template.py``): ``tooling`` (the base image with the user, uv and
the JupyterLab venv) and ``packages``' start (the toolchain image with that
venv and a snapshot of it). Built inside every repository's build they cost
the first build on a machine, and every build with the layer cache off, most
of its time. So they are images of their own, ``binderlite/stage:<kind>-<key>``,
made by ``binderlite base-image`` ahead (or by the first build that needs
one) and found by every later build.

The key is a hash of everything the stage's content comes from: its
Dockerfile (base and toolchain image ids, the tooling specs, the package
index settings), the files it copies in (CA bundle, uv, binderlite's helper
scripts) and the build arguments that reach it (the user's name and uid), so
a change of any of them makes a new stage and a stage can never be stale.
Proxy build arguments are passed but not hashed: they change how the stage
is fetched, not what it holds. A stage is made with the same limits and on
the same network as any build step (``engine``), under a lock so that builds
waiting for the same stage wait for one making of it.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import docker.errors

from binderlite.builds.engine import BuildLimits, LimitedDockerEngine
from binderlite.dockerutil import docker_client
from binderlite.sandbox import dockernet
from binderlite.settings import Settings, proxy_environment

STAGE_REPOSITORY = "binderlite/stage"
STAGE_LABEL = "org.binderlite.stage"  # the stage's kind: "tooling" or "packages"
KEY_LENGTH = 16
BUILDER_NOISE = re.compile(r"^\s*(---> |Removing intermediate container |Successfully built |$)")

log = logging.getLogger("repo2docker")


@dataclass(frozen=True)
class Stage:
    """One shared stage: its kind, its Dockerfile, the files it copies (name in context → host path)."""

    kind: str
    dockerfile: str
    files: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    describe: str = ""  # for the build log: "the tooling for Python 3.11 on binderlite/base:bookworm"

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.dockerfile.encode())
        for name, path in sorted(self.files.items()):
            digest.update(f"\0{name}\0".encode())
            digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
        for name, value in sorted(self.build_args.items()):
            digest.update(f"\0{name}={value}".encode())
        return digest.hexdigest()[:KEY_LENGTH]

    @property
    def image_name(self) -> str:
        return f"{STAGE_REPOSITORY}:{self.kind}-{self.key}"

    def context(self) -> io.BytesIO:
        """The build context: the Dockerfile and the files, as a tar archive."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            _add(archive, "Dockerfile", self.dockerfile.encode(), 0o644)
            for name, path in sorted(self.files.items()):
                data = Path(path).read_bytes()
                _add(archive, name, data, 0o755 if Path(path).stat().st_mode & 0o111 else 0o644)
        buffer.seek(0)
        return buffer


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


class StageImages(Protocol):
    def ensure(self, stage: Stage) -> str:
        """The id of ``stage``'s image, made now if it is missing."""


class DockerStageImages:
    """Stage images on the local daemon, made with binderlite's build limits when missing."""

    def __init__(self, settings: Settings, say: Callable[[str], None] | None = None):
        self.settings = settings
        self.say = say or (lambda text: log.info(text))

    def ensure(self, stage: Stage) -> str:
        client = docker_client(self.settings)
        name = stage.image_name
        found = _image_id(client, name)
        if found:
            return found
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.settings.run_dir / f"stage-{stage.kind}-{stage.key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a build making the same stage: wait for it
            found = _image_id(client, name)
            if found:
                return found
            what = stage.describe or stage.kind
            self.say(f"binderlite: making {what} as {name} (once: later builds start from it)\n")
            started = time.monotonic()
            dockernet.ensure_networks(self.settings)  # its steps run on build_network, under its rules
            engine = LimitedDockerEngine(parent=None)
            engine.limits = BuildLimits.from_settings(self.settings)
            for text in engine.build(
                custom_context=True,
                fileobj=stage.context(),
                tag=name,
                buildargs={**stage.build_args, **proxy_environment(self.settings)},
                labels={STAGE_LABEL: stage.kind},
            ):
                if not BUILDER_NOISE.match(text):
                    self.say(text)
            self.say(f"binderlite: made {name} in {time.monotonic() - started:.0f} s\n")
        return _image_id(client, name) or name


def _image_id(client, name: str) -> str | None:
    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None
