"""The hub's spawn progress as launch events, for both kinds of launch."""

from __future__ import annotations

from collections.abc import Iterator

from binderlite.errors import HubError
from binderlite.events import Event
from binderlite.hub.api import HubClient


def follow(client: HubClient, user: str, server: str, deadline: float) -> Iterator[Event]:
    """Relay the spawn's progress until the server is ready; HubError on failure."""
    for event in client.progress(user, deadline, server):
        if event.get("failed"):
            raise HubError(f"Server failed to start: {event.get('message', 'no reason given')}")
        if event.get("message"):
            yield Event.launching(event["message"])
        if event.get("ready"):
            return
    raise HubError("Launch timed out: the server did not become ready in time.", retryable=False, status=504)
