"""The warm pool's shared state, and taking a ready server from it for a launch.

Pooled servers are the default servers of hub users the scheduler's pool job
(``scheduler/pool.py``) creates ahead of time. Which ones exist, and in which
state, is one SQLite table (``<state>/run/pool.sqlite``) that every web
worker and the scheduler share:

    starting ──▶ ready ──▶ claimed        (and ──▶ draining, then gone)

``claim`` moves one ``ready`` row of exactly the image (and image id) a
launch asks for to ``claimed``, in one ``BEGIN IMMEDIATE`` transaction, so
two launches never get the same server. The pool job only drains rows it
moved to ``draining`` itself the same way, so a claimed server is never
taken away from the launch that claimed it. A claimed server's user is an
ordinary temporary user from then on: culled when idle, deleted with it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from binderlite.hub.api import HubClient
from binderlite.settings import Settings
from binderlite.workshop.warmpool import image_id

log = logging.getLogger("binderlite.launch.pool")
STARTING, READY, CLAIMED, DRAINING = "starting", "ready", "claimed", "draining"
SCHEMA = """
CREATE TABLE IF NOT EXISTS pool (
    user TEXT PRIMARY KEY, image TEXT NOT NULL, image_id TEXT NOT NULL, state TEXT NOT NULL,
    created REAL NOT NULL, ready REAL, claimed REAL
);
CREATE INDEX IF NOT EXISTS pool_image ON pool (image, state);
"""


@dataclass(frozen=True)
class Entry:
    """One pooled server: its hub user (the server is the user's default one), image and state."""

    user: str
    image: str
    image_id: str
    state: str
    created: float
    ready: float | None = None
    claimed: float | None = None


Claimed = Entry


def db_path(settings: Settings):
    return settings.run_dir / "pool.sqlite"


@contextmanager
def _db(settings: Settings) -> Iterator[sqlite3.Connection]:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(db_path(settings), timeout=30, isolation_level=None)
    try:
        db.executescript(SCHEMA)
        yield db
    finally:
        db.close()


def in_use(settings: Settings) -> bool:
    """True if a pool was ever kept here (a launch need not open the database otherwise)."""
    return db_path(settings).exists()


def entries(settings: Settings) -> list[Entry]:
    """Every pooled server, oldest first."""
    if not in_use(settings):
        return []
    with _db(settings) as db:
        rows = db.execute("SELECT user, image, image_id, state, created, ready, claimed FROM pool ORDER BY created")
        return [Entry(*row) for row in rows]


def unclaimed_users(settings: Settings) -> set[str]:
    """Users of pooled servers no launch has taken (starting, ready or draining)."""
    return {e.user for e in entries(settings) if e.state != CLAIMED}


def claim(settings: Settings, image: str, image_id: str | None = None) -> Claimed | None:
    """Take one ready server of exactly ``image`` (and ``image_id``, when given) for a launch, or None."""
    if not in_use(settings):
        return None
    with _db(settings) as db:
        db.execute("BEGIN IMMEDIATE")  # one claimer at a time, across processes
        try:
            query = "SELECT user FROM pool WHERE image = ? AND state = ?"
            params: list = [image, READY]
            if image_id:
                query += " AND image_id = ?"
                params.append(image_id)
            row = db.execute(query + " ORDER BY ready LIMIT 1", params).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute("UPDATE pool SET state = ?, claimed = ? WHERE user = ?", (CLAIMED, time.time(), row[0]))
            found = db.execute(
                "SELECT user, image, image_id, state, created, ready, claimed FROM pool WHERE user = ?", row
            ).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return Entry(*found)


def add(settings: Settings, user: str, image: str, image_id: str) -> None:
    """Record a pooled server about to be started (before its hub user exists, so none is ever lost)."""
    with _db(settings) as db:
        db.execute(
            "INSERT INTO pool (user, image, image_id, state, created) VALUES (?, ?, ?, ?, ?)",
            (user, image, image_id, STARTING, time.time()),
        )


def mark_ready(settings: Settings, user: str) -> bool:
    """A starting server answers: it may be claimed now. False if it was not starting."""
    with _db(settings) as db:
        changed = db.execute(
            "UPDATE pool SET state = ?, ready = ? WHERE user = ? AND state = ?", (READY, time.time(), user, STARTING)
        )
        return changed.rowcount == 1


def take_for_draining(settings: Settings, user: str) -> bool:
    """Move an unclaimed server to ``draining`` (no launch can claim it now); False if a launch has it."""
    with _db(settings) as db:
        changed = db.execute(
            "UPDATE pool SET state = ? WHERE user = ? AND state IN (?, ?, ?)",
            (DRAINING, user, STARTING, READY, DRAINING),
        )
        return changed.rowcount == 1


def forget(settings: Settings, user: str) -> None:
    """Drop a row (its server and user are gone, or were never made)."""
    with _db(settings) as db:
        db.execute("DELETE FROM pool WHERE user = ?", (user,))


def take(settings: Settings, client: HubClient, image: str, tries: int = 3) -> tuple[str, str] | None:
    """A claimed, running pooled server of ``image`` and a token that opens only it: (user, token), or None.

    A claimed server the hub no longer lists as ready (it died, or was culled
    while starting) is dropped and the next one tried.
    """
    if not any(e.image == image and e.state == READY for e in entries(settings)):
        return None  # (without asking Docker: most launches of most installs)
    current = image_id(settings, image)
    for _ in range(tries):
        entry = claim(settings, image, current) if current else None
        if entry is None:
            return None
        model = client.user(entry.user) or {}
        server = (model.get("servers") or {}).get("") or {}
        if server.get("ready") and not server.get("pending"):
            return entry.user, client.new_server_token(entry.user)["token"]
        log.warning("warm pool: %s was claimed but its server is not ready; dropping it", entry.user)
        client.delete_user(entry.user)
        forget(settings, entry.user)
    return None
