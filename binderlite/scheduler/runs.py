"""A record of the scheduler's recent runs (job, start, duration, what it did), for the admin page.

Each job run adds one row to ``scheduler_runs`` in ``<state>/binderlite.sqlite``;
only the last ``KEEP`` runs of each job are kept, so the table stays small
however long the scheduler runs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from binderlite.settings import Settings

KEEP = 50
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS scheduler_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, "
    "started REAL NOT NULL, seconds REAL NOT NULL, result TEXT NOT NULL)"
)


@dataclass(frozen=True)
class Run:
    job: str
    started: float
    seconds: float
    result: str


def summary(counts: dict[str, int]) -> str:
    """What a run did, in words: ``removed_images 2, expired_logs 0`` (``nothing to do`` when all are 0)."""
    done = [f"{name.replace('_', ' ')} {value}" for name, value in counts.items() if value]
    return ", ".join(done) or "nothing to do"


def record_run(settings: Settings, job: str, started: float, seconds: float, result: str) -> None:
    """Add one run of ``job``, dropping that job's runs beyond the last ``KEEP``."""
    with sqlite3.connect(settings.db_path, timeout=30) as db:
        db.execute(SCHEMA)
        db.execute(
            "INSERT INTO scheduler_runs (job, started, seconds, result) VALUES (?, ?, ?, ?)",
            (job, started, seconds, result),
        )
        db.execute(
            "DELETE FROM scheduler_runs WHERE job = ? AND id NOT IN "
            "(SELECT id FROM scheduler_runs WHERE job = ? ORDER BY id DESC LIMIT ?)",
            (job, job, KEEP),
        )


def recent_runs(settings: Settings, limit: int = 20) -> list[Run]:
    """The latest runs of every job, newest first (none before the scheduler first ran)."""
    try:
        with sqlite3.connect(settings.db_path, timeout=30) as db:
            rows = db.execute(
                "SELECT job, started, seconds, result FROM scheduler_runs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    return [Run(*row) for row in rows]
