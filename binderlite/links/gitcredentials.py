"""Per-host git credentials, handed to the sandboxed git through its environment and nothing else.

The secrets file (``binderlite.credentials``) holds, per host, a user name and
token (HTTPS) or a deploy key (SSH). When a link needs one:

- **HTTPS**: git's credential helper is set by environment variables
  (``GIT_CONFIG_COUNT``/``KEY``/``VALUE``), a shell function that answers only
  ``get`` requests for the host the secrets file names (so a redirect or a
  submodule on another host gets nothing) and prints the user name and token
  from two more environment variables. The token is never in a command line
  (``ps``), a URL, ``.git/config``, a file, a log or an error.
- **SSH**: a copy of the key, readable only by the sandbox user, beside the
  checkout (never inside it) for the one git command, deleted after it;
  ``ssh -i <copy> -o IdentitiesOnly=yes``, host keys checked as for any link.

The environment of a process is readable only by its own user and root.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

from binderlite.credentials import GitCredential, load_credentials
from binderlite.errors import ConfigError, SpecError
from binderlite.links.urlsafety import is_loopback
from binderlite.settings import Settings

# Answers `git credential get` for one host only; printf is the shell's builtin, so no argv holds the token.
HELPER = (
    '!f() { test "$1" = get || exit 0; host=; proto=; '
    "while IFS='=' read -r key value; do case \"$key\" in host) host=$value;; protocol) proto=$value;; esac; done; "
    'test "$proto" = "$BINDERLITE_GIT_PROTOCOL" || exit 0; '
    'test "$host" = "$BINDERLITE_GIT_HOST" || exit 0; '
    'printf \'username=%s\\npassword=%s\\n\' "$BINDERLITE_GIT_USERNAME" "$BINDERLITE_GIT_TOKEN"; }; f'
)
HTTP_SCHEMES = ("http", "https")
KEY_PREFIX = ".binderlite-ssh-key-"
SCHEMELESS_USERINFO = re.compile(r"^[^/@]*:[^/@]*@")


def url_host(url: str) -> str:
    """The credential key of ``url``: ``name`` or ``name:port`` (lower-case), empty for a local path."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    return f"{host}:{port}" if host and port else host


def check_no_userinfo(url: str) -> None:
    """Refuse a URL with a user name or password in it (``https://user:token@host/…``), echoing none of it.

    ``ssh://git@host/…`` (a user name, no password, over SSH) is how SSH links are written, so it is kept.
    """
    url = url.strip()
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and "@" in parts.netloc:
        if parts.scheme.lower() == "ssh" and parts.password is None:
            return
        host = parts.netloc.rpartition("@")[2]
    elif SCHEMELESS_USERINFO.match(url):  # user:token@host/… with no scheme
        host = url.partition("@")[2].split("/", 1)[0]
    else:
        return
    raise SpecError(
        f"The link has a user name or password in its URL (…@{host}). Never paste a credential into a link: "
        "links are shared and logged. Remove it; for a private repository the administrator adds a credential "
        f"for {host} to binderlite's secrets file (credentials.toml)."
    )


def token_scheme_allowed(settings: Settings, url: str) -> bool:
    """A token travels over https; over plain http only to a loopback address when local repositories are allowed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "https":
        return True
    return parts.scheme.lower() == "http" and settings.allow_local_repos and is_loopback(parts.hostname or "")


def credential_for(settings: Settings, url: str) -> GitCredential | None:
    """The secrets file's credential that fits ``url`` (a token for https, a key for ssh), if any.

    A token is never offered over plain http to another machine (it would cross the network in clear).
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in (*HTTP_SCHEMES, "ssh"):
        return None
    if scheme == "http" and not token_scheme_allowed(settings, url):
        return None
    credential = load_credentials(settings).git_for(url_host(url))
    if credential is None:
        return None
    if scheme == "ssh":
        return credential if credential.ssh_key else None
    return credential if credential.token else None


def https_environment(credential: GitCredential, protocol: str = "https") -> dict[str, str]:
    """git's environment for a username + token credential (a helper bound to one host and one protocol).

    Bound to the link's protocol, the helper gives nothing to a redirect from https to plain http.
    """
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": HELPER,
        "BINDERLITE_GIT_PROTOCOL": protocol,
        "BINDERLITE_GIT_HOST": credential.host,
        "BINDERLITE_GIT_USERNAME": credential.username,
        "BINDERLITE_GIT_TOKEN": credential.token,
    }


@contextlib.contextmanager
def ssh_key_copy(credential: GitCredential, work_dir: Path, owner: tuple[int, int] | None) -> Iterator[str]:
    """A copy of the deploy key in ``work_dir`` (owned by ``owner``, mode 0400); yields its file name."""
    name = KEY_PREFIX + uuid.uuid4().hex
    copy = work_dir / name
    try:
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        with os.fdopen(fd, "wb") as out, open(credential.ssh_key, "rb") as key:
            shutil.copyfileobj(key, out)
        if owner is not None:
            os.chown(copy, *owner)
    except OSError as exc:
        copy.unlink(missing_ok=True)
        raise ConfigError(
            f"The SSH key for {credential.host} in the secrets file could not be read ({exc.strerror})."
        ) from None
    try:
        yield name
    finally:
        copy.unlink(missing_ok=True)


@contextlib.contextmanager
def credential_environment(
    settings: Settings,
    url: str,
    work_dir: Path,
    *,
    mount: str,
    ssh_command: str,
    owner: tuple[int, int] | None,
) -> Iterator[dict[str, str]]:
    """Extra environment with which git authenticates to ``url``'s host; ``{}`` when none is configured.

    ``work_dir`` is seen by git as ``mount``; an SSH key's copy lives there while the block runs.
    """
    credential = credential_for(settings, url)
    if credential is None:
        yield {}
    elif credential.ssh_key:
        with ssh_key_copy(credential, work_dir, owner) as name:
            yield {"GIT_SSH_COMMAND": f"{ssh_command} -o IdentitiesOnly=yes -i {mount}/{name}"}
    else:
        yield https_environment(credential, urllib.parse.urlsplit(url).scheme.lower())
