"""The build queue: one build per image, a concurrency limit, state that outlives processes.

Builds are rows in SQLite (``<state>/binderlite.sqlite``) and their logs are
JSON-lines files (``<state>/builds/<id>.jsonl``). Asking for an image that is
already queued or building attaches to that build. ``dispatch()`` starts
queued builds while fewer than ``build_concurrency`` run; each runs in a
detached worker process (``binderlite.builds.worker``), so a caller that goes
away — a closed tab, a restarted web worker — does not stop it. A build whose
worker died is marked failed the next time anyone looks, never left stuck.
``stop()`` ends a build on purpose (the admin page): failed, its worker told to stop.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from binderlite.errors import UnavailableError
from binderlite.events import Event, EventLog
from binderlite.observe import metrics, multiproc
from binderlite.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    id TEXT PRIMARY KEY,
    image TEXT NOT NULL,
    repo_url TEXT NOT NULL,
    ref TEXT NOT NULL,
    content_provider TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    message TEXT,
    private INTEGER NOT NULL DEFAULT 0,
    provider TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS builds_image_state ON builds (image, state);
CREATE TABLE IF NOT EXISTS image_usage (
    image TEXT PRIMARY KEY,
    last_used REAL NOT NULL
);
"""
ACTIVE = ("queued", "running")


class QueueFull(UnavailableError):
    """``build_queue_limit`` builds are already waiting."""

    status = 429


DISPATCH_GRACE = 30.0


@dataclass
class Build:
    id: str
    image: str
    repo_url: str
    ref: str
    content_provider: str
    state: str
    pid: int | None
    created: float
    started: float | None
    finished: float | None
    message: str | None
    private: int = 0  # fetched with the host's credential (the secrets file)
    provider: str = ""  # the link's provider prefix (gh, gl, git, ...), for the build metrics


def pid_alive(pid: int | None) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].split(" ", 1)[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class BuildQueue:
    """Builds on disk; safe to use from many processes at once."""

    def __init__(self, settings: Settings):
        self.settings = settings
        settings.ensure_dirs()
        with self._db() as db:
            db.executescript(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(builds)")}
            for column, kind in (("private", "INTEGER NOT NULL DEFAULT 0"), ("provider", "TEXT NOT NULL DEFAULT ''")):
                if column not in columns:  # a database of an earlier release
                    db.execute(f"ALTER TABLE builds ADD COLUMN {column} {kind}")

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.settings.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def log(self, build_id: str) -> EventLog:
        return EventLog(self.settings.build_logs_dir / f"{build_id}.jsonl")

    def get(self, build_id: str) -> Build | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone()
        return Build(**dict(row)) if row else None

    def request(
        self, image: str, repo_url: str, ref: str, content_provider: str, private: bool = False, provider: str = ""
    ) -> tuple[Build, bool]:
        """The active build of ``image``, or a new queued one; and whether it is new."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT * FROM builds WHERE image = ? AND state IN ('queued', 'running') ORDER BY created LIMIT 1",
                (image,),
            ).fetchone()
            if row:
                db.execute("COMMIT")
                return Build(**dict(row)), False
            (waiting,) = db.execute("SELECT COUNT(*) FROM builds WHERE state = 'queued'").fetchone()
            if self.settings.build_queue_limit and waiting >= self.settings.build_queue_limit:
                db.execute("ROLLBACK")
                raise QueueFull("Too many builds are waiting on this BinderHub! Try again soon.")
            build_id = uuid.uuid4().hex[:16]
            db.execute(
                "INSERT INTO builds (id, image, repo_url, ref, content_provider, state, created, private, provider) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (build_id, image, repo_url, ref, content_provider, time.time(), int(private), provider),
            )
            db.execute("COMMIT")
            metrics.record_queue(waiting + 1)
        finally:
            db.close()
        self.log(build_id).append(Event.waiting("Waiting for build to start..."))
        return self.get(build_id), True

    def touch_image(self, image: str) -> None:
        """Record that ``image`` was just asked for (image GC removes the least recent first)."""
        with self._db() as db:
            db.execute(
                "INSERT INTO image_usage (image, last_used) VALUES (?, ?) "
                "ON CONFLICT(image) DO UPDATE SET last_used = excluded.last_used",
                (image, time.time()),
            )

    def image_last_used(self) -> dict[str, float]:
        with self._db() as db:
            return {row["image"]: row["last_used"] for row in db.execute("SELECT * FROM image_usage")}

    def active_images(self) -> set[str]:
        """Images queued or being built right now."""
        with self._db() as db:
            rows = db.execute("SELECT image FROM builds WHERE state IN ('queued', 'running')").fetchall()
        return {row["image"] for row in rows}

    def queue_position(self, build: Build) -> int:
        """1-based position among queued builds (0 when not queued)."""
        if build.state != "queued":
            return 0
        with self._db() as db:
            (ahead,) = db.execute(
                "SELECT COUNT(*) FROM builds WHERE state = 'queued' AND created <= ? AND id != ?",
                (build.created, build.id),
            ).fetchone()
        return ahead + 1

    def finish(self, build_id: str, state: str, message: str) -> bool:
        """Record the outcome of a build and count it in the build metrics, once: by its worker, by ``stop``
        or by ``reap``. False if it had already ended (an administrator stopped it), and nothing is counted."""
        now = time.time()
        with self._db() as db:
            cur = db.execute(
                "UPDATE builds SET state = ?, finished = ?, message = ? "
                "WHERE id = ? AND state IN ('queued', 'running')",
                (state, now, message, build_id),
            )
        if not cur.rowcount:
            return False
        build = self.get(build_id)
        metrics.record_build(  # never raises: a metrics problem cannot keep the result from the watchers
            self.settings,
            provider=build.provider,
            repo=build.repo_url,
            private=bool(build.private),
            status="success" if state == "succeeded" else "failure",
            seconds=now - (build.started or build.created),
        )
        return True

    def builds(self, states: tuple[str, ...], limit: int = 50) -> list[Build]:
        """Builds in one of ``states``, newest first."""
        marks = ", ".join("?" for _ in states)
        with self._db() as db:
            rows = db.execute(
                f"SELECT * FROM builds WHERE state IN ({marks}) ORDER BY created DESC LIMIT ?", (*states, limit)
            ).fetchall()
        return [Build(**dict(row)) for row in rows]

    def latest_build_of(self, image: str) -> Build | None:
        """The newest build that made (or makes) ``image``."""
        with self._db() as db:
            row = db.execute("SELECT * FROM builds WHERE image = ? ORDER BY created DESC LIMIT 1", (image,)).fetchone()
        return Build(**dict(row)) if row else None

    def stop(self, build_id: str, message: str) -> bool:
        """End a queued or running build as failed with ``message``; its worker gets SIGTERM and stops
        repo2docker. False if the build had already ended."""
        build = self.get(build_id)
        if build is None or not self.finish(build_id, "failed", message):
            return False
        if build.pid and pid_alive(build.pid):
            try:
                os.killpg(build.pid, signal.SIGTERM)  # the worker leads its own session (start_new_session)
            except (ProcessLookupError, PermissionError):
                pass
        self.log(build_id).append(Event.failed(message))
        return True

    def reap(self) -> list[str]:
        """Mark running builds whose worker is gone as failed; return their ids."""
        reaped = []
        with self._db() as db:
            rows = db.execute("SELECT * FROM builds WHERE state = 'running'").fetchall()
        for row in rows:
            build = Build(**dict(row))
            starting = build.pid is None and time.time() - (build.started or 0) < DISPATCH_GRACE
            if starting or pid_alive(build.pid):
                continue
            message = "Build failed: the build process stopped unexpectedly (was binderlite restarted?).\n"
            if self.finish(build.id, "failed", message):
                multiproc.process_exited(build.pid)  # its in-progress count goes with it
                self.log(build.id).append(Event.failed(message))
                reaped.append(build.id)
        return reaped

    def dispatch(self) -> list[str]:
        """Start queued builds while there is room; return the ids started."""
        self.reap()
        claimed = []
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            (running,) = db.execute("SELECT COUNT(*) FROM builds WHERE state = 'running'").fetchone()
            room = self.settings.build_concurrency - running
            rows = []
            if room > 0:
                rows = db.execute(
                    "SELECT id, created FROM builds WHERE state = 'queued' ORDER BY created LIMIT ?", (room,)
                ).fetchall()
                for row in rows:
                    db.execute(
                        "UPDATE builds SET state = 'running', started = ? WHERE id = ?",
                        (time.time(), row["id"]),
                    )
                    claimed.append(row["id"])
            (waiting,) = db.execute("SELECT COUNT(*) FROM builds WHERE state = 'queued'").fetchone()
            db.execute("COMMIT")
            metrics.record_queue(waiting, [time.time() - row["created"] for row in rows])
        finally:
            db.close()
        for build_id in claimed:
            self._start_worker(build_id)
        return claimed

    def _start_worker(self, build_id: str) -> None:
        env = {**os.environ, **self.settings.to_environment()}
        out = open(self.settings.build_logs_dir / f"{build_id}.worker.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "binderlite.builds.worker", build_id],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(Path(__file__).resolve().parent.parent),
            start_new_session=True,
        )
        out.close()
        with self._db() as db:
            db.execute("UPDATE builds SET pid = ? WHERE id = ?", (proc.pid, build_id))

    def follow(self, build_id: str, poll: float = 0.25, idle_every: float = 20.0) -> Iterator[Event | None]:
        """Yield the build's events from the start until it ends; ``None`` when idle for ``idle_every`` s."""
        log = self.log(build_id)
        offset, last_sent, last_position = 0, time.monotonic(), None
        while True:
            events, offset = log.read_from(offset)
            for ev in events:
                last_sent = time.monotonic()
                yield ev
                if ev.ends_build:
                    return
            build = self.get(build_id)
            if build is None:
                yield Event.failed(f"Build {build_id} does not exist.")
                return
            if build.state == "queued":
                self.dispatch()
                position = self.queue_position(build)
                if position != last_position and position:
                    last_position = position
                    last_sent = time.monotonic()
                    yield Event.waiting(f"Build queued: position {position} in the queue.", position)
            elif build.state == "running":
                self.reap()
            elif not events:
                final, offset = log.read_from(offset)
                if not any(ev.ends_build for ev in final):
                    yield from final
                    yield Event.failed(build.message or "Build ended without a result.")
                    return
                yield from final
                return
            if time.monotonic() - last_sent >= idle_every:
                last_sent = time.monotonic()
                yield None
            time.sleep(poll)
