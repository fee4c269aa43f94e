"""The event stream every watcher reads (the web page, the CLI, BinderHub's JS client), and its log on disk.

An ``Event`` is one message of BinderHub's build API: a dict whose keys are
the wire format (``phase``, ``message``, and per phase ``imageName``,
``queue_position``, ``status_code``, ``url``, ``token``, ``binder_*``).
Events are made with the constructors below, one per shape, so no module
spells a phase or a key by hand. ``phase`` is one of ``Phase`` or absent
for a plain log line. A build ends with ``built`` or ``failed``
(``ends_build``); a request's stream ends with ``ready`` or ``failed``
(``ends_stream``). The build worker appends events to
``<state>/builds/<id>.jsonl``; every watcher (CLI, SSE, a late-comer) reads
the same file from the start, so nobody misses the log so far.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Phase(enum.StrEnum):
    """BinderHub's phases, in the order a launch goes through them."""

    WAITING = "waiting"
    FETCHING = "fetching"
    BUILDING = "building"
    PUSHING = "pushing"
    BUILT = "built"
    LAUNCHING = "launching"
    READY = "ready"
    FAILED = "failed"


BUILD_ENDS = frozenset({Phase.BUILT, Phase.FAILED})
STREAM_ENDS = frozenset({Phase.READY, Phase.FAILED})


def _line(message: str) -> str:
    return message if message.endswith("\n") else message + "\n"


class Event(dict[str, Any]):
    """One message of the stream; the dict itself is what goes on the wire."""

    @property
    def phase(self) -> Phase | None:
        value = self.get("phase")
        return Phase(value) if value in Phase._value2member_map_ else None

    @property
    def message(self) -> str:
        return str(self.get("message", ""))

    @property
    def ends_build(self) -> bool:
        return self.phase in BUILD_ENDS

    @property
    def ends_stream(self) -> bool:
        return self.phase in STREAM_ENDS

    # ---- constructors, one per shape ----------------------------------------
    @classmethod
    def of(cls, phase: Phase | None, message: str, **fields: Any) -> Event:
        ev = cls(message=message)
        if phase is not None:
            ev["phase"] = str(phase)
        ev.update(fields)
        return ev

    @classmethod
    def log(cls, message: str) -> Event:
        """A plain log line (no phase)."""
        return cls.of(None, message)

    @classmethod
    def warning(cls, message: str) -> Event:
        """A log line that says something was left out or may not work: shown apart by the page and the CLI."""
        return cls.of(None, _line(message), warning=True)

    @property
    def is_warning(self) -> bool:
        return self.get("warning") is True

    @classmethod
    def waiting(cls, message: str, queue_position: int | None = None) -> Event:
        extra = {"queue_position": queue_position} if queue_position else {}
        return cls.of(Phase.WAITING, _line(message), **extra)

    @classmethod
    def fetching(cls, message: str) -> Event:
        return cls.of(Phase.FETCHING, message)

    @classmethod
    def building(cls, message: str) -> Event:
        return cls.of(Phase.BUILDING, message)

    @classmethod
    def pushing(cls, message: str) -> Event:
        return cls.of(Phase.PUSHING, _line(message))

    @classmethod
    def built(cls, image: str, message: str) -> Event:
        return cls.of(Phase.BUILT, _line(message), imageName=image)

    @classmethod
    def launching(cls, message: str) -> Event:
        return cls.of(Phase.LAUNCHING, _line(message))

    @classmethod
    def ready(cls, message: str, **fields: Any) -> Event:
        """``url`` and ``token`` (launch) or ``imageName`` (build only), plus BinderHub's ``binder_*``."""
        return cls.of(Phase.READY, _line(message), **fields)

    @classmethod
    def failed(cls, message: str, status: int | None = None) -> Event:
        extra = {"status_code": status} if status is not None else {}
        return cls.of(Phase.FAILED, _line(message.rstrip("\n")), **extra)

    @classmethod
    def from_wire(cls, data: Any) -> Event:
        """An event read back from JSON; anything that is not one becomes a plain log line."""
        if not isinstance(data, dict) or not isinstance(data.get("message", ""), str):
            return cls.log(_line(json.dumps(data)))
        ev = cls(data)
        if "phase" in ev and ev.phase is None:
            del ev["phase"]  # not one of BinderHub's phases: keep the text as a log line
        return ev


READ_CHUNK = 1024 * 1024  # what a watcher reads at once
MAX_LOG_BYTES = 16 * 1024 * 1024  # a build log stops growing here (a repository's output is unbounded)
MAX_LINE_CHARS = 64 * 1024
CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/\s@]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of any URL in it replaced (``https://user:secret@host`` → ``https://***@host``)."""
    return CREDENTIALS_IN_URL.sub("***@", text)


class EventLog:
    """Append-only JSON-lines file of one build's events; messages are redacted as they are written."""

    def __init__(self, path: Path):
        self.path = path
        self._said_full = False

    def append(self, ev: Event) -> None:
        """Add one event; past ``MAX_LOG_BYTES`` plain log lines are dropped (phases are always kept)."""
        if "message" in ev:
            ev = Event({**ev, "message": redact(ev.message[:MAX_LINE_CHARS])})
        size = self.path.stat().st_size if self.path.exists() else 0
        if size > MAX_LOG_BYTES and not self._said_full:
            self._said_full = True
            self._write(Event.log(f"(the build log is over {MAX_LOG_BYTES // 1024**2} MiB: its output is left out)\n"))
        if size > MAX_LOG_BYTES and ev.phase is None:
            return
        if size > MAX_LOG_BYTES and ev.phase is not None and not ev.ends_build:
            ev = Event({**ev, "message": ""})  # the phase still counts; the text is left out
        self._write(ev)

    def _write(self, ev: Event) -> None:
        line = json.dumps(ev, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def read_from(self, offset: int) -> tuple[list[Event], int]:
        """Complete events after byte ``offset`` (at most ``READ_CHUNK`` bytes of them), and the offset after them."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                data = fh.read(READ_CHUNK)
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) == READ_CHUNK:  # one line longer than a chunk: skip it, saying so
                return [Event.log("(a log line too long to show was left out)\n")], offset + len(data)
            return [], offset
        events = []
        for raw in data[: end + 1].splitlines():
            try:
                events.append(Event.from_wire(json.loads(raw)))
            except ValueError:
                events.append(Event.log(raw.decode("utf-8", "replace") + "\n"))
        return events, offset + end + 1

    def __iter__(self) -> Iterator[Event]:
        events, _ = self.read_from(0)
        return iter(events)

    def tail_text(self, lines: int) -> str:
        """The last ``lines`` lines of log text, for failure messages."""
        text = "".join(ev.message for ev in self)
        return "\n".join(text.splitlines()[-lines:])
