"""The launch event log: one JSON line per launch in ``<state_dir>/logs/launches.jsonl``.

Each line is BinderHub's launch event (schema ``binderhub.jupyter.org/launch``,
version 6, ``binderhub/event-schemas/launch.json``) in BinderHub's envelope
(``binderhub/events.py``: ``timestamp``, ``schema``, ``version``, then the
event's fields at the same level), so tools reading BinderHub's event log read
this one. BinderHub logs only successful launches; binderlite also logs
failed and refused ones as ``status: "failure"`` with a ``reason`` (the
``failed`` event's message). The schema does not forbid other properties, so
these lines validate against it too; a reader that wants BinderHub's view
keeps only ``status == "success"``.

Several gunicorn workers append at once: each line is one ``write`` to a file
opened with ``O_APPEND``, made under an exclusive ``flock`` on
``launches.jsonl.lock`` that also guards rotation (by size: the log moves to
``.1``, ``.1`` to ``.2`` …, ``event_log_backups`` kept), so no line is lost and
no two processes rotate the same file. The files are 0600, in the state's
0700 logs folder: private repositories' specs are written as given, marked
``"private": true`` (their readers already see them in the access and build
logs); credentials pasted into a link never are.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
from pathlib import Path

from binderlite.observe.redact import redact
from binderlite.settings import Settings

log = logging.getLogger(__name__)

SCHEMA = "binderhub.jupyter.org/launch"
VERSION = 6
FILE_NAME = "launches.jsonl"
REASON_MAX = 1000  # characters of a failure's message kept

# binderlite's link names → BinderHub's provider names (the schema's enum; BinderHub's RepoProvider.name).
PROVIDER_NAMES = {
    "gh": "GitHub",
    "gist": "Gist",
    "gl": "GitLab",
    "git": "Git",
    "zenodo": "Zenodo",
    "figshare": "Figshare",
    "hydroshare": "Hydroshare",
    "dataverse": "Dataverse",
    "ckan": "CKAN",
}


def log_path(settings: Settings) -> Path:
    """Where launch events go: ``<state_dir>/logs/launches.jsonl``."""
    return settings.logs_dir / FILE_NAME


def launch_event(
    *,
    provider: str,
    spec: str,
    ref: str,
    status: str,
    origin: str,
    request_origin: str,
    reason: str = "",
    private: bool = False,
    now: datetime.datetime | None = None,
) -> dict:
    """One line's content: BinderHub's envelope and v6 fields, plus ``reason`` (failures) and ``private``.

    A provider BinderHub does not name (a link that named none binderlite
    knows) leaves ``provider`` out: the schema requires no field, and an
    invented name would not be in its enum.
    """
    now = now or datetime.datetime.now(tz=datetime.UTC)
    event: dict = {"timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "schema": SCHEMA, "version": VERSION}
    if provider in PROVIDER_NAMES:
        event["provider"] = PROVIDER_NAMES[provider]
    event.update(
        spec=redact(spec),
        ref=ref,
        status=status,
        build_token=False,  # binderlite has no build tokens
        origin=redact(origin),
        request_origin=redact(request_origin),
    )
    if status != "success":
        event["reason"] = redact(reason.strip())[:REASON_MAX]
    if private:
        event["private"] = True
    return event


def _rotate(path: Path, backups: int) -> None:
    """``path`` → ``.1``, ``.1`` → ``.2`` …, the oldest beyond ``backups`` dropped (caller holds the lock)."""
    if backups == 0:
        path.unlink(missing_ok=True)
        return
    for n in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))


def append(path: Path, line: bytes, max_bytes: int, backups: int) -> None:
    """Append one line, rotating first if it would take the file past ``max_bytes``; safe across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(line) > max_bytes:
            _rotate(path, backups)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    finally:
        os.close(lock)  # closing releases the lock


def record_launch(
    settings: Settings,
    *,
    provider: str,
    spec: str,
    ref: str,
    status: str,
    origin: str,
    request_origin: str,
    reason: str = "",
    private: bool = False,
) -> None:
    """Log one launch's outcome (``status``: "success" or "failure"); never raises (a launch goes on without it)."""
    try:
        event = launch_event(
            provider=provider,
            spec=spec,
            ref=ref,
            status=status,
            origin=origin,
            request_origin=request_origin,
            reason=reason,
            private=private,
        )
        line = (json.dumps(event) + "\n").encode()
        append(log_path(settings), line, settings.event_log_max_bytes, settings.event_log_backups)
    except OSError as exc:
        log.warning("Could not write the launch event log %s: %s", log_path(settings), exc)
    except Exception:  # the stream must still end, whatever went wrong here
        log.exception("Could not record a launch of %s/%s in the event log", provider, spec)
