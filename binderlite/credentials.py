"""The secrets file, ``credentials.toml``: git credentials per host and the authenticator's secrets.

Secrets never go in the settings table (settings travel to child processes as
environment variables and are printed by ``binderlite config``). The file sits
beside the config file (or at ``credentials_file``), is owned by the user
binderlite runs as, and is refused when anyone else may read it::

    [[git]]                           # HTTPS: a user name and a token (or password)
    host = "git.dept.example"         # a host, or host:port
    username = "deploy"
    token = "glpat-..."

    [[git]]                           # SSH: a deploy key (a private key file, mode 0600)
    host = "gitea.dept.example:2222"
    ssh_key = "/etc/binderlite/keys/gitea-deploy"

    [[records]]                       # an API token for a data-record host (Zenodo, Figshare, Dataverse, CKAN)
    host = "dataverse.dept.example"   # a host, or host:port
    token = "..."

    [auth]                            # the authenticator's secrets (names in the README)
    oauth_client_secret = "..."
    ldap_bind_password = "..."
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from binderlite.errors import ConfigError
from binderlite.settings import Settings, config_path

GIT_KEYS = {"host", "username", "token", "ssh_key"}
RECORD_KEYS = {"host", "token"}
SECTIONS = {"git", "records", "auth"}


@dataclass(frozen=True)
class GitCredential:
    """How to authenticate to one git host: ``username`` + ``token`` over HTTPS, or ``ssh_key`` over SSH."""

    host: str
    username: str = ""
    token: str = field(default="", repr=False)
    ssh_key: str = ""


@dataclass(frozen=True)
class RecordCredential:
    """An API token for one data-record host (sent only to that host, over https)."""

    host: str
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Credentials:
    """Everything in the secrets file (empty when there is none)."""

    git: tuple[GitCredential, ...] = ()
    records: tuple[RecordCredential, ...] = ()
    auth: dict[str, str] = field(default_factory=dict, repr=False)

    def git_for(self, host: str) -> GitCredential | None:
        """The credential for ``host`` (``name`` or ``name:port``, case-insensitive), if any."""
        host = host.lower()
        return next((c for c in self.git if c.host == host), None)

    def record_for(self, host: str) -> RecordCredential | None:
        """The API token entry for the record host ``host`` (``name`` or ``name:port``), if any."""
        host = host.lower()
        return next((c for c in self.records if c.host == host), None)


def credentials_path(settings: Settings) -> Path:
    """``credentials_file``, else ``credentials.toml`` in the config file's folder."""
    return Path(settings.credentials_file or Path(config_path()).parent / "credentials.toml")


def load_credentials(settings: Settings) -> Credentials:
    """The secrets file, checked: ConfigError names the file and the fix (never a secret)."""
    path = credentials_path(settings)
    try:
        info = path.stat()
    except FileNotFoundError:
        if settings.credentials_file:
            raise ConfigError(f"Setting credentials_file is {str(path)!r}, but that file does not exist.") from None
        return Credentials()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The secrets file {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"run `chmod 600 {path}`."
        )
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"The secrets file {path} belongs to another user: make the user binderlite runs as its owner."
        )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # tomllib's message quotes no value, only where the syntax broke
        raise ConfigError(f"The secrets file {path} could not be read: {exc}") from None
    unknown = set(data) - SECTIONS
    if unknown:
        raise ConfigError(
            f"The secrets file {path} has unknown sections {sorted(unknown)}; it knows [[git]], [[records]] and [auth]."
        )
    for section in ("git", "records"):
        if not isinstance(data.get(section, []), list):
            raise ConfigError(f"The secrets file {path}: {section} must be a list of tables, written [[{section}]].")
    records = tuple(_record_entry(path, i, e) for i, e in enumerate(data.get("records", [])))
    hosts = [r.host for r in records]
    if len(set(hosts)) != len(hosts):
        twice = sorted({h for h in hosts if hosts.count(h) > 1})
        raise ConfigError(f"The secrets file {path} has more than one [[records]] entry for {', '.join(twice)}.")
    return Credentials(
        git=tuple(_git_entry(path, i, e) for i, e in enumerate(data.get("git", []))),
        records=records,
        auth=_auth(path, data),
    )


def _entry_host(where: str, entry: object, keys: set[str], shape: str) -> tuple[dict[str, str], str]:
    """An entry's table of strings with only ``keys``, and its host (lower-case), or ConfigError."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table with {shape}.")
    unknown = set(entry) - keys
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; it knows {sorted(keys)}.")
    if not all(isinstance(v, str) for v in entry.values()):
        raise ConfigError(f"{where}: every value must be a string.")
    host = entry.get("host", "").strip().lower()
    if not host or any(c in host for c in "/@?# ") or host.startswith(":"):
        raise ConfigError(f'{where} needs host = "name" or "name:port" (no scheme, path or user).')
    return entry, host


def _git_entry(path: Path, index: int, entry: object) -> GitCredential:
    where = f"The secrets file {path}, [[git]] entry {index + 1}"
    entry, host = _entry_host(where, entry, GIT_KEYS, "host and username + token, or host and ssh_key")
    has_token, has_key = bool(entry.get("token")), bool(entry.get("ssh_key"))
    if has_token == has_key:
        raise ConfigError(f"{where} ({host}) needs either username + token or ssh_key, not both or neither.")
    if has_token and not entry.get("username"):
        raise ConfigError(f"{where} ({host}) has a token but no username.")
    return GitCredential(
        host=host, username=entry.get("username", ""), token=entry.get("token", ""), ssh_key=entry.get("ssh_key", "")
    )


def _record_entry(path: Path, index: int, entry: object) -> RecordCredential:
    where = f"The secrets file {path}, [[records]] entry {index + 1}"
    entry, host = _entry_host(where, entry, RECORD_KEYS, "host and token")
    token = entry.get("token", "")
    if not token.strip():
        raise ConfigError(f"{where} ({host}) has no token.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in token):
        raise ConfigError(f"{where} ({host}): the token contains spaces or control characters.")
    return RecordCredential(host=host, token=token)


def _auth(path: Path, data: dict) -> dict[str, str]:
    auth = data.get("auth", {})
    if not isinstance(auth, dict) or not all(isinstance(v, str) for v in auth.values()):
        raise ConfigError(f"The secrets file {path}: [auth] must hold string values only.")
    return dict(auth)
