"""Build progress as a typed event stream, kept on disk as JSON lines.

An event is a dict with BinderHub's keys: ``phase`` (waiting, fetching,
building, pushing, built, failed — absent for a plain log line), ``message``
and, where it applies, ``imageName``. The build worker appends events to
``<state>/builds/<id>.jsonl``; every watcher (CLI, SSE, a late-comer) reads
the same file from the start, so nobody misses the log so far.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]
TERMINAL_PHASES = ("built", "failed")


def event(phase: str | None, message: str, **extra: Any) -> Event:
    """An event dict; ``phase=None`` makes a plain log line."""
    ev: Event = {"message": message}
    if phase:
        ev["phase"] = phase
    ev.update(extra)
    return ev


class EventLog:
    """Append-only JSON-lines file of one build's events."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, ev: Event) -> None:
        line = json.dumps(ev, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read_from(self, offset: int) -> tuple[list[Event], int]:
        """Complete events after byte ``offset``, and the offset after them."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n")
        if end < 0:
            return [], offset
        events = []
        for raw in data[: end + 1].splitlines():
            try:
                events.append(json.loads(raw))
            except ValueError:
                events.append(event(None, raw.decode("utf-8", "replace") + "\n"))
        return events, offset + end + 1

    def __iter__(self) -> Iterator[Event]:
        events, _ = self.read_from(0)
        return iter(events)

    def tail_text(self, lines: int) -> str:
        """The last ``lines`` lines of log text, for failure messages."""
        text = "".join(ev.get("message", "") for ev in self)
        return "\n".join(text.splitlines()[-lines:])
