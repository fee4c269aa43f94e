"""The ``/build`` API's event stream (``text/event-stream``), read as a client reads it."""

from __future__ import annotations

import json
import time

import requests

STREAM_HEADERS = {"Accept": "text/event-stream"}
FINAL_PHASES = ("ready", "failed")
BUILD_DEADLINE = 600  # seconds a build (and launch) stream may take in the tests and benchmarks


def read_events(response: requests.Response, deadline: float = BUILD_DEADLINE) -> tuple[list[dict], int]:
    """Events of an SSE response until ready/failed (or the deadline), and the keepalives seen."""
    events, keepalives = [], 0
    end = time.monotonic() + deadline
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(":keepalive"):
            keepalives += 1
        elif line.startswith("data: "):
            events.append(json.loads(line[len("data: ") :]))
            if events[-1].get("phase") in FINAL_PHASES:
                break
        assert time.monotonic() < end, f"stream did not finish in {deadline} s: {events[-3:]}"
    return events, keepalives


def stream_events(url: str, deadline: float = BUILD_DEADLINE) -> list[dict]:
    """GET ``url`` as an event stream (checking that it is one) and read it to ready/failed."""
    with requests.get(url, headers=STREAM_HEADERS, stream=True, timeout=(5, 60)) as response:
        assert response.status_code == 200, (url, response.status_code, response.text[:2000])
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache, no-store"
        events, _ = read_events(response, deadline)
    return events


def final_event(events: list[dict]) -> dict:
    """The ready/failed event that ended a stream, or a failed event saying the stream ended without one."""
    if events and events[-1].get("phase") in FINAL_PHASES:
        return events[-1]
    return {"phase": "failed", "message": "stream ended"}


def log_text(events: list[dict]) -> str:
    """The build log: every event's message, in order."""
    return "".join(ev.get("message", "") for ev in events)
