"""binderlite's own hub token: kept in the state dir, rotated on upgrade, the only one of its service.

The token that the launcher and the scheduler use is generated once and kept
in ``<state>/hub/service_token`` (mode 0600). Releases before 0.2 kept it in
``api_token`` and sent it to users' servers, so a repository could have
copied it: when that file is found it is deleted and a new token made. At
every hub start ``purge_stale_service_tokens`` deletes from the hub database
every token of the service other than the current one, so a rotated token
stops working at once.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("binderlite.hub")
SERVICE_NAME = "binderlite"
TOKEN_FILE = "service_token"
LEGACY_TOKEN_FILE = "api_token"


def persistent_secret(path: Path) -> str:
    """Read a secret from ``path``, creating it (mode 0600) on first use."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    # Written whole into a file of its own, then linked into place: a process reading the secret while another
    # makes it (gunicorn's workers start together) finds no file or all of it, never an empty one.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(value + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    finally:
        draft.unlink()
    return value


def service_token(hub_dir: Path) -> str:
    """The service token in ``hub_dir``, replacing a token of the old, leaky releases."""
    (hub_dir / LEGACY_TOKEN_FILE).unlink(missing_ok=True)
    return persistent_secret(hub_dir / TOKEN_FILE)


def purge_stale_service_tokens(db_path: Path, keep: str, service: str = SERVICE_NAME) -> int:
    """Delete every token of ``service`` in the hub database at ``db_path`` except ``keep``."""
    if not db_path.exists():
        return 0  # a new hub: nothing to purge
    from jupyterhub import orm  # the hub's own models: only the hub process imports this

    try:
        db = orm.new_session_factory(f"sqlite:///{db_path}")()
    except Exception as exc:  # e.g. the database needs `jupyterhub upgrade-db` first: the hub will say so
        log.warning("could not open %s to purge old service tokens: %s", db_path, exc)
        return 0
    try:
        orm_service = orm.Service.find(db, service)
        stale = [t for t in (orm_service.api_tokens if orm_service else []) if not t.match(keep)]
        for token in stale:
            db.delete(token)
        db.commit()
    finally:
        db.close()
    if stale:
        log.warning("deleted %d old API tokens of service %s (rotated)", len(stale), service)
    return len(stale)
