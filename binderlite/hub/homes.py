"""Persistent homes: a Docker volume per (signed-in user, server), mounted at ``persistent_folder`` in the home.

Only in authenticated mode (``persistent_homes``): the repository's files
come fresh from the image at every launch, the user's own work lives in the
volume, which outlives the container (DockerSpawner removes only anonymous
volumes), the culler (it stops servers of signed-in users, never deletes
them) and restarts. A server is named for its repository, so each
repository a user launches gets its own folder, as BinderHub's "persistent
BinderHub" does.

The quota (``home_quota``) is given to Docker's local volume driver as its
``size`` option, which it enforces only where ``/var/lib/docker`` supports
project quotas (XFS with ``pquota``); elsewhere (overlay2 on ext4, say) the
driver refuses the option, the volume is made without it and labelled
``measured``: its size is measured at every launch (the launch shows a warning
to a user over it) and by ``binderlite homes list`` — never a silent no-op.

A fresh volume is owned by root; it is handed to uid 1000 by a short-lived
container of binderlite's own base image (never the repository's image, whose
``chown`` could be anything) with no network and only the capabilities to
change the owner and mode and to read the folder; the same container measures it. The
user's server itself never runs as root.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

import docker.errors
import requests

from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BadInputError, ServiceError
from binderlite.settings import Settings

JOVYAN_UID = 1000
LABEL = "binderlite.home"
QUOTA_LABEL = "binderlite.quota"  # "enforced" (the driver's size option) or "measured"
MOUNT = "/binderlite-home"  # where the helper container sees the volume
HELPER_LIMITS = {"mem_limit": "128m", "pids_limit": 64, "network_mode": "none"}


@dataclass(frozen=True)
class Home:
    """One persistent folder: its volume, whose it is, its size (bytes, None if unknown) and quota."""

    volume: str
    user: str
    server: str
    size: int | None
    quota: int
    enforced: bool

    @property
    def over_quota(self) -> bool:
        return bool(self.quota) and self.size is not None and self.size > self.quota


def _slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-")


def volume_name(settings: Settings, user: str, server: str) -> str:
    """``<prefix><user>-<server>-<hash>``: readable, and distinct for distinct (user, server) pairs."""
    digest = hashlib.sha256(f"{user}\0{server}".encode()).hexdigest()[:10]
    return f"{settings.home_volume_prefix}{_slug(user, 24) or 'user'}-{_slug(server, 24) or 'default'}-{digest}"


def mount_target(image_env: list[str] | None, folder: str) -> str:
    """Where the volume goes in a container of an image with environment ``image_env``: ``$HOME/<folder>``."""
    home = "/home/jovyan"
    for item in image_env or []:
        key, _, value = item.partition("=")
        if key == "HOME" and value.startswith("/"):
            home = value.rstrip("/") or "/"
    return f"{home.rstrip('/')}/{folder}"


def human(size: int) -> str:
    """A size as people read it (binary units, as the settings)."""
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{size}B"


def quota_note(home: Home, folder: str) -> str | None:
    """What a user over quota is told when the server starts; None when within it."""
    if not home.over_quota or home.size is None:
        return None
    return (
        f"Warning: your persistent folder ~/{folder} holds {human(home.size)}, over its quota of "
        f"{human(home.quota)}. Your files are kept, but delete some to get under the quota; this machine "
        "cannot stop the folder from growing, and an administrator may remove folders over their quota."
    )


def _labels(settings: Settings, user: str, server: str, enforced: bool) -> dict[str, str]:
    return {
        LABEL: "1",
        "binderlite.instance": settings.state_dir,
        "binderlite.user": user,
        "binderlite.server": server,
        QUOTA_LABEL: "enforced" if enforced else "measured",
    }


def _create(client, settings: Settings, name: str, user: str, server: str):
    """The volume, made with the driver's size quota where it supports one, else without (labelled so)."""
    if settings.home_quota:
        try:
            return client.volumes.create(
                name,
                driver="local",
                driver_opts={"size": settings.home_quota},
                labels=_labels(settings, user, server, True),
            )
        except docker.errors.APIError as exc:
            if "quota" not in str(exc).lower():
                raise
    return client.volumes.create(name, driver="local", labels=_labels(settings, user, server, False))


def _helper(settings: Settings, client, volume: str, command: list[str]) -> str:
    """Run ``command`` in binderlite's base image with ``volume`` at MOUNT, as root without network; its output."""
    if not local_image_exists(client, settings.base_image):
        raise ServiceError(
            f"Persistent homes need binderlite's base image {settings.base_image} to prepare folders; "
            "make it with `binderlite base-image`."
        )
    try:
        output = client.containers.run(
            settings.base_image,
            command,
            user="0",
            entrypoint=[],
            volumes={volume: {"bind": MOUNT, "mode": "rw"}},
            cap_drop=["ALL"],
            cap_add=["CHOWN", "FOWNER", "DAC_READ_SEARCH"],
            security_opt=["no-new-privileges"],
            labels={"binderlite.instance": settings.state_dir, "binderlite.helper": "home"},
            remove=True,
            stderr=True,
            **HELPER_LIMITS,
        )
    except docker.errors.ContainerError as exc:
        raise ServiceError(f"Preparing the persistent folder {volume} failed: {exc.stderr!r}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise ServiceError(f"Preparing the persistent folder {volume} failed: Docker said {exc}") from None
    return output.decode("utf-8", "replace")


def _size(text: str) -> int | None:
    first = text.strip().split()[:1]
    return int(first[0]) if first and first[0].isdigit() else None


def ensure_home(settings: Settings, user: str, server: str) -> Home:
    """The (user, server)'s volume, made if missing, owned by uid 1000 and measured."""
    client = docker_client(settings)
    name = volume_name(settings, user, server)
    try:
        try:
            volume = client.volumes.get(name)
        except docker.errors.NotFound:
            volume = _create(client, settings, name, user, server)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise ServiceError(f"The persistent folder {name} could not be made: Docker said {exc}") from None
    chown = f"chmod 0700 {MOUNT} && chown {JOVYAN_UID}:{JOVYAN_UID} {MOUNT} && du -sb {MOUNT}"
    size = _size(_helper(settings, client, name, ["sh", "-c", chown]))
    labels = volume.attrs.get("Labels") or {}
    return Home(name, user, server, size, settings.home_quota_bytes, labels.get(QUOTA_LABEL) == "enforced")


def _volumes(settings: Settings, client) -> list:
    filters = {"label": [f"{LABEL}=1", f"binderlite.instance={settings.state_dir}"]}
    return sorted(client.volumes.list(filters=filters), key=lambda v: v.name)


def list_homes(settings: Settings) -> list[Home]:
    """Every persistent folder of this install, with its size as Docker measures it."""
    client = docker_client(settings)
    sizes = {}
    for entry in client.df().get("Volumes") or []:
        size = (entry.get("UsageData") or {}).get("Size")
        sizes[entry.get("Name")] = size if isinstance(size, int) and size >= 0 else None
    homes = []
    for volume in _volumes(settings, client):
        labels = volume.attrs.get("Labels") or {}
        homes.append(
            Home(
                volume.name,
                labels.get("binderlite.user", ""),
                labels.get("binderlite.server", ""),
                sizes.get(volume.name),
                settings.home_quota_bytes,
                labels.get(QUOTA_LABEL) == "enforced",
            )
        )
    return homes


def render(homes: list[Home]) -> str:
    """The admin's table: user, server, size against quota, how the quota holds, the volume."""
    if not homes:
        return "no persistent folders\n"
    rows = [("USER", "SERVER", "SIZE", "QUOTA", "", "VOLUME")]
    for h in homes:
        size = human(h.size) if h.size is not None else "?"
        quota = (human(h.quota) + (" (enforced)" if h.enforced else " (measured)")) if h.quota else "none"
        rows.append((h.user, h.server or "(default)", size, quota, "OVER QUOTA" if h.over_quota else "", h.volume))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def remove_homes(settings: Settings, user: str, server: str | None = None) -> list[str]:
    """Remove ``user``'s folders (only the one of ``server`` if given); the volumes removed.

    A folder whose server runs is refused (stop the server first): its files would go from under it.
    """
    client = docker_client(settings)
    chosen = [
        v
        for v in _volumes(settings, client)
        if (v.attrs.get("Labels") or {}).get("binderlite.user") == user
        and (server is None or (v.attrs.get("Labels") or {}).get("binderlite.server") == server)
    ]
    if not chosen:
        which = f"{user}'s folder for server {server!r}" if server is not None else f"folders of user {user!r}"
        raise BadInputError(f"No persistent {which}; `binderlite homes list` shows them.")
    removed = []
    for volume in chosen:
        try:
            volume.remove()
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise ServiceError(
                    f"{volume.name} is in use by a running server of {user}: stop it first "
                    f"(JupyterHub's admin page, or wait for the culler). Removed so far: {removed or 'none'}."
                ) from None
            raise
        removed.append(volume.name)
    return removed


# ---- backup and restore ---------------------------------------------------------------------
def _idle_container(settings: Settings, client, volume: str, mode: str):
    """A container of the base image with ``volume`` at MOUNT that is never started (for Docker's archive API)."""
    return client.containers.create(
        settings.base_image,
        ["true"],
        volumes={volume: {"bind": MOUNT, "mode": mode}},
        network_mode="none",
        labels={"binderlite.instance": settings.state_dir, "binderlite.helper": "home"},
    )


def export_home(settings: Settings, volume: str, out: BinaryIO) -> None:
    """Write a tar of the volume's files (owners and modes kept, paths relative to the folder) to ``out``."""
    client = docker_client(settings)
    container = _idle_container(settings, client, volume, "ro")
    try:
        stream, _ = container.get_archive(MOUNT)
        with tempfile.TemporaryFile() as raw:
            for chunk in stream:
                raw.write(chunk)
            raw.seek(0)
            _strip_top(raw, out)
    finally:
        container.remove(force=True)


def import_home(settings: Settings, user: str, server: str, archive: BinaryIO) -> str:
    """Make (or fill) the (user, server)'s volume from a tar of ``export_home``; the volume's name."""
    client = docker_client(settings)
    name = volume_name(settings, user, server)
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        _create(client, settings, name, user, server)
    with tempfile.TemporaryFile() as checked:
        _strip_top(archive, checked, top=False)
        checked.seek(0)
        container = _idle_container(settings, client, name, "rw")
        try:
            if not container.put_archive(MOUNT, checked):
                raise ServiceError(f"Docker refused to restore the files of {name}.")
        finally:
            container.remove(force=True)
    _helper(settings, client, name, ["chown", f"{JOVYAN_UID}:{JOVYAN_UID}", MOUNT])
    return name


def _strip_top(source: BinaryIO, target: BinaryIO, top: bool = True) -> None:
    """Copy a tar, dropping its top folder from each path (``top``).

    Devices, absolute paths, ``..`` and paths through a symbolic link of the archive are refused.
    """
    links: set[str] = set()
    with tarfile.open(fileobj=source, mode="r|*") as tin, tarfile.open(fileobj=target, mode="w|") as tout:
        for member in tin:
            parts = member.name.split("/")[1:] if top else member.name.split("/")
            parts = [p for p in parts if p not in ("", ".")]
            if not parts:
                continue
            through_link = any("/".join(parts[:i]) in links for i in range(1, len(parts)))
            if member.isdev() or member.name.startswith("/") or ".." in parts or through_link:
                raise BadInputError(f"A persistent folder's archive holds {member.name!r}: not restoring it.")
            member.name = "/".join(parts)
            if member.issym():
                links.add(member.name)
            if member.islnk():
                link = [p for p in member.linkname.split("/")[1 if top else 0 :] if p not in ("", ".")]
                if not link or ".." in link:
                    raise BadInputError(
                        f"A persistent folder's archive links {member.name!r} outside it: not restoring it."
                    )
                member.linkname = "/".join(link)
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
