"""Quotas that hold under concurrency, and a per-client launch rate limit.

The hub's list of running servers is the truth, but twenty launches that
all ask it at once all see room. So each launch takes a *slot* (its user and
repository) before it creates anything, counting the hub's servers plus the
slots of users the hub does not list yet, in one SQLite transaction across
every web worker and CLI process (``<state>/run/launches.sqlite``). The hub
is asked before the transaction, never inside it: a web worker serves many
launches in one process, and a transaction held across a network call would
lock out the others. A slot counts while its launch is creating the server,
and after that only for launches that asked the hub before the server was
started (their answer cannot have listed it); a failed launch gives its slot
back, and a slot whose process died is forgotten after ``SLOT_SECONDS``. The
rate limit counts each client's launches in a sliding window, in the same
database.

Warm pool servers (``launch/pool.py``) count towards ``total_quota`` from the
moment the pool job starts them (it takes a slot too, ``pooled=True``), so the
machine is never over-committed; they count towards ``per_repo_quota`` only
once a launch has claimed them (an unclaimed one is nobody's yet; its
``user_options`` name its pool user, ``warm_pool``). Taking a pooled server
starts nothing and takes no slot.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from binderlite.errors import UnavailableError
from binderlite.hub.api import HubClient
from binderlite.launch.pool import unclaimed_users
from binderlite.settings import Settings

SLOT_SECONDS = 120.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS slots (
    id TEXT PRIMARY KEY, repo_url TEXT NOT NULL, created REAL NOT NULL, started REAL
);
CREATE TABLE IF NOT EXISTS attempts (client TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_client ON attempts (client, at);
"""


class QuotaExceeded(UnavailableError):
    """No room for another server (BinderHub's messages)."""

    status = 429


def _db(settings: Settings) -> sqlite3.Connection:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(settings.run_dir / "launches.sqlite", timeout=30, isolation_level=None)
    db.executescript(SCHEMA)
    return db


@contextmanager
def slot(settings: Settings, client: HubClient, repo_url: str, pooled: bool = False) -> Iterator[None]:
    """Take a slot for a new server of ``repo_url`` while the block starts it; QuotaExceeded if full.

    If the block fails the slot is given back (nothing was started); if it
    succeeds the slot is marked started, for launches that asked the hub before.
    ``pooled``: a warm pool server, held to ``total_quota`` only.
    """
    if not (settings.total_quota or settings.per_repo_quota):
        yield
        return
    asked = time.time()
    running = client.running_servers()  # outside the transaction: no lock held across the network
    db = _db(settings)
    slot_id = uuid.uuid4().hex
    try:
        db.execute("BEGIN IMMEDIATE")  # one counter at a time, across processes
        db.execute("DELETE FROM slots WHERE created < ?", (time.time() - SLOT_SECONDS,))
        # In progress, or started after this launch asked the hub (so its answer may lack it).
        held = [
            url for (url,) in db.execute("SELECT repo_url FROM slots WHERE started IS NULL OR started > ?", (asked,))
        ]
        counted = [server.get("repo_url") for server in running] + held
        if settings.total_quota and len(counted) >= settings.total_quota:
            raise QuotaExceeded("Too many users on this BinderHub! Try again soon.")
        if settings.per_repo_quota and not pooled and _per_repo(settings, running, held, repo_url):
            raise QuotaExceeded(f"Too many users running {repo_url}! Try again soon.")
        db.execute("INSERT INTO slots (id, repo_url, created) VALUES (?, ?, ?)", (slot_id, repo_url, time.time()))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
        raise
    try:
        yield
    except BaseException:
        db.execute("DELETE FROM slots WHERE id = ?", (slot_id,))
        raise
    else:
        db.execute("UPDATE slots SET started = ? WHERE id = ?", (time.time(), slot_id))
    finally:
        db.close()


def _per_repo(settings: Settings, running: list[dict], held: list[str], repo_url: str) -> bool:
    """True if ``repo_url`` is at its quota, not counting unclaimed pooled servers."""
    unclaimed = unclaimed_users(settings) if any(s.get("warm_pool") for s in running) else set()
    counted = [s.get("repo_url") for s in running if not (s.get("warm_pool") and s["warm_pool"] in unclaimed)]
    return (counted + held).count(repo_url) >= settings.per_repo_quota


def rate_limited(settings: Settings, client: str, now: float | None = None) -> float | None:
    """Seconds ``client`` must wait before launching again, or None (and the launch is counted)."""
    if not settings.launch_rate_limit:
        return None
    now = time.time() if now is None else now
    window_start = now - settings.launch_rate_period
    db = _db(settings)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM attempts WHERE at < ?", (window_start,))
        times = [row[0] for row in db.execute("SELECT at FROM attempts WHERE client = ? ORDER BY at", (client,))]
        if len(times) >= settings.launch_rate_limit:
            db.execute("COMMIT")
            return max(1.0, times[0] - window_start)
        db.execute("INSERT INTO attempts (client, at) VALUES (?, ?)", (client, now))
        db.execute("COMMIT")
        return None
    finally:
        db.close()
