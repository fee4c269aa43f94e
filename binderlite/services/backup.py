"""``binderlite backup FILE`` / ``binderlite restore FILE``: what cannot be rebuilt, in one tar.gz.

A backup holds the settings file, JupyterHub's database (its users, servers
and tokens), binderlite's database (builds, image use, counts) and the
secrets in ``<state_dir>/hub`` (service token, proxy token, cookie secret, the
key of users' auth state) — and, in authenticated mode with persistent homes, each signed-in user's
persistent folder (``homes/<volume>.tar``, owners and modes kept, read through
Docker's archive API from a container that never runs) — never images, logs or
the registry, which are rebuilt. It is safe while
binderlite serves: databases are copied with SQLite's online backup API, so a
copy is always consistent. The archive starts with ``manifest.json`` (format,
binderlite's version, time, each file's size, mode and SHA-256) and is written
0600, atomically. ``restore`` refuses while services run (unless ``force``),
refuses an archive that is not one of ours, has been changed, or names a path
outside its own folders, and puts each file back with its mode, owned by root.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from binderlite import __version__
from binderlite.errors import BadInputError, BinderliteError, ConfigError, ServiceError
from binderlite.hub import homes
from binderlite.hub.auth import AUTH_STATE_KEY_FILE
from binderlite.hub.tokens import TOKEN_FILE
from binderlite.services.prepare import COOKIE_SECRET_FILE
from binderlite.services.status import service_states
from binderlite.services.table import all_services
from binderlite.settings import Settings

FORMAT = "binderlite-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HUB_DB = "jupyterhub.sqlite"
SECRET_FILES = (TOKEN_FILE, "proxy_token", COOKIE_SECRET_FILE, AUTH_STATE_KEY_FILE)  # the last: authenticated mode
CONFIG_NAME = "config/binderlite.toml"
DATABASES = (f"state/hub/{HUB_DB}", "state/binderlite.sqlite")  # the hub's, and Settings.db_path's
RESTORABLE = frozenset([CONFIG_NAME, *DATABASES, *(f"state/hub/{name}" for name in SECRET_FILES)])
HOME_ENTRY = re.compile(r"homes/[a-zA-Z0-9][a-zA-Z0-9_.-]*\.tar")


class BackupError(BadInputError):
    """The archive is not a binderlite backup, is damaged, or is unsafe to unpack."""


@dataclass(frozen=True)
class Item:
    """One file of a backup: its name in the archive and where it lives on this machine."""

    name: str
    path: Path
    database: bool = False


def items(settings: Settings, config_file: str) -> list[Item]:
    """What a backup holds for these settings (whatever of it exists)."""
    hub = settings.hub_dir
    wanted = [
        Item(CONFIG_NAME, Path(config_file)),
        Item(DATABASES[0], hub / HUB_DB, database=True),
        Item(DATABASES[1], settings.db_path, database=True),
        *(Item(f"state/hub/{name}", hub / name) for name in SECRET_FILES),
    ]
    return [item for item in wanted if item.path.is_file()]


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API; writers may carry on)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(settings: Settings, config_file: str, out: Path) -> list[str]:
    """Write the backup to ``out`` (0600, atomically); the names of the files it holds."""
    out = out.absolute()
    found = items(settings, config_file)
    if not any(item.database for item in found):
        raise ServiceError(
            f"Nothing to back up in {settings.state_dir}: no hub or build database there. "
            "Is state_dir right (see the config file and BINDERLITE_STATE_DIR)?"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".binderlite-backup-", dir=out.parent) as work:
        copies = []
        for i, item in enumerate(found):
            copy = Path(work) / str(i)
            if item.database:
                _copy_database(item.path, copy)
            else:
                shutil.copyfile(item.path, copy)
            copies.append((item, copy))
        folders = []
        if settings.auth_mode == "authenticated" and settings.persistent_homes:
            for home in homes.list_homes(settings):
                copy = Path(work) / f"home-{len(folders)}"
                with open(copy, "wb") as fh:
                    homes.export_home(settings, home.volume, fh)
                folders.append((home, copy))
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "binderlite_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "state_dir": settings.state_dir,
            "config_file": config_file,
            "files": [
                {
                    "name": item.name,
                    "size": copy.stat().st_size,
                    "mode": item.path.stat().st_mode & 0o777,
                    "sha256": _sha256(copy),
                }
                for item, copy in copies
            ]
            + [
                {
                    "name": f"homes/{home.volume}.tar",
                    "size": copy.stat().st_size,
                    "mode": 0o600,
                    "sha256": _sha256(copy),
                    "user": home.user,
                    "server": home.server,
                }
                for home, copy in folders
            ],
        }
        partial = Path(work) / "backup.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
            for item, copy in [*copies, *((Item(f"homes/{h.volume}.tar", c), c) for h, c in folders)]:
                info = tar.gettarinfo(str(copy), arcname=item.name)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "root", "root"
                with open(copy, "rb") as fh:
                    tar.addfile(info, fh)
        os.replace(partial, out)
    return [item.name for item in found] + [f"homes/{home.volume}.tar" for home, _ in folders]


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        bool(name)
        and not path.is_absolute()
        and ".." not in path.parts
        and path.parts[0] in ("config", "state", "homes")
    )


def read_manifest(tar: tarfile.TarFile, source: Path) -> dict:
    """The archive's manifest, checked: ours, a version we read, every member a plain file it lists."""
    try:
        member = tar.getmember(MANIFEST)
        fh = tar.extractfile(member)
        manifest = json.loads(fh.read()) if fh else None
    except (KeyError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is not a binderlite backup (no binderlite manifest in it).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{source} is a binderlite backup of format {manifest.get('format_version')}; "
            f"this binderlite ({__version__}) reads format {FORMAT_VERSION}."
        )
    listed = {f.get("name") for f in manifest.get("files") or [] if isinstance(f, dict)}
    for member in tar.getmembers():
        if member.name == MANIFEST:
            continue
        if not member.isfile() or not _safe_name(member.name) or member.name not in listed:
            raise BackupError(
                f"{source} holds {member.name!r}, which a binderlite backup never holds "
                "(a link, a device, a path outside its folders, or a file its manifest does not list): not restoring."
            )
    for name in listed:
        if not isinstance(name, str) or not _safe_name(name):
            raise BackupError(f"{source}'s manifest names {name!r}, a path outside its folders: not restoring.")
        if name not in RESTORABLE and not HOME_ENTRY.fullmatch(name):
            raise BackupError(f"{source} holds {name}, which binderlite never backs up: not restoring.")
    return manifest


def _place(settings: Settings, config_file: str, name: str) -> Item:
    """Where a file of the archive (one of ``RESTORABLE``) goes on this machine."""
    if name == CONFIG_NAME:
        return Item(name, Path(config_file))
    return Item(name, Path(settings.state_dir) / name.removeprefix("state/"), database=name.endswith(".sqlite"))


def restore(
    settings_for: Callable[[], Settings],
    config_file: str,
    source: Path,
    running: Callable[[Settings], list[str]],
    force: bool = False,
) -> list[Path]:
    """Put a backup's files back; ``settings_for`` loads the settings (again, once the config is restored).

    ``running`` names the services that run now: restore refuses while any does, unless ``force``.
    """
    try:
        settings: Settings | None = settings_for()
    except ConfigError:
        settings = None  # no settings file yet (a new machine): the backup brings one
    try:
        tar = tarfile.open(source, mode="r:gz")
    except FileNotFoundError:
        raise BackupError(f"{source} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"{source} is not a binderlite backup (not a tar.gz archive: {exc}).") from None
    with tar, tempfile.TemporaryDirectory(prefix=".binderlite-restore-") as work:
        try:
            manifest = read_manifest(tar, source)
            busy = running(settings or Settings())
            if busy and not force:
                raise ServiceError(
                    f"binderlite is running ({', '.join(busy)}): restoring under it would corrupt its databases. "
                    "Stop it first — `systemctl stop 'binderlite-*'` on a server (it waits until every unit stopped), "
                    "Ctrl-C for `binderlite up` — or pass --force."
                )
            unpacked = _unpack(tar, manifest, source, Path(work))
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise BackupError(f"{source} is damaged ({exc.__class__.__name__}: {exc}).") from None
        restored = []
        if CONFIG_NAME in unpacked:
            restored.append(_put(*unpacked.pop(CONFIG_NAME), Path(config_file)))
        settings = settings_for()  # the restored settings decide where the state goes
        settings.ensure_dirs()
        folders = {e["name"]: e for e in manifest["files"] if HOME_ENTRY.fullmatch(e["name"])}
        for name, (target, mode) in unpacked.items():
            if name in folders:
                with open(target, "rb") as fh:
                    volume = homes.import_home(
                        settings, str(folders[name].get("user")), str(folders[name].get("server")), fh
                    )
                restored.append(Path(volume))
                continue
            item = _place(settings, config_file, name)
            if item.database:
                for suffix in ("-wal", "-shm", "-journal"):  # a stale journal would replay into the restored file
                    Path(f"{item.path}{suffix}").unlink(missing_ok=True)
            restored.append(_put(target, mode, item.path))
        return restored


def _unpack(tar: tarfile.TarFile, manifest: dict, source: Path, work: Path) -> dict[str, tuple[Path, int]]:
    """Every file the manifest lists, into ``work``, checked against its checksum: name → (copy, mode)."""
    unpacked = {}
    for entry in manifest["files"]:
        fh = tar.extractfile(entry["name"])
        if fh is None:
            raise BackupError(f"{source} is damaged: {entry['name']} is missing.")
        copy = work / str(len(unpacked))
        with open(copy, "wb") as out:
            shutil.copyfileobj(fh, out)
        if _sha256(copy) != entry.get("sha256"):
            raise BackupError(f"{source} is damaged: {entry['name']} does not match its checksum.")
        unpacked[entry["name"]] = (copy, int(entry.get("mode", 0o600)) & 0o777)
    return unpacked


def _put(source: Path, mode: int, path: Path) -> Path:
    """Move ``source`` to ``path`` atomically with ``mode``, owned by root when run as root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.restore")
    shutil.copyfile(source, partial)
    partial.chmod(mode)
    if os.geteuid() == 0:
        os.chown(partial, 0, 0)
    os.replace(partial, path)
    return path


def running_services(settings: Settings) -> list[str]:
    """The binderlite services that run now (systemd units, or ``binderlite up``'s children)."""
    try:
        states = service_states(settings, all_services(settings, find=lambda name: name))
    except (BinderliteError, OSError):
        return []
    return [s["name"] for s in states if s["ok"]]
