"""Launches for signed-in users (authenticated mode): one named server per repository, reopened when running.

The user is the hub user who signed in; the server's name comes from the
repository (``server_name_for``), so a second launch of a repository the user
runs opens the same server. A new server counts against ``servers_per_user``
(BinderHub's named-server quota wording) and the access rule's ``max_servers``,
and carries the rule's name and limits in ``user_options``, which only
binderlite sets: users cannot start servers through the hub API themselves.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from binderlite.errors import HubError
from binderlite.events import Event
from binderlite.hub import addresses
from binderlite.hub.api import HubClient
from binderlite.hub.identity import SignedInUser
from binderlite.launch.names import server_name_for
from binderlite.launch.progress import follow
from binderlite.launch.quotas import QuotaExceeded, slot
from binderlite.settings import AccessRule, Settings

RULE_LOCK_POLL = 0.05  # seconds between tries for a rule's lock (a sleep lets other greenlets run)


def rule_limits(rule: AccessRule | None) -> dict:
    """The rule's limits as the spawner reads them from ``user_options["limits"]`` (empty: the defaults)."""
    limits: dict = {}
    if rule and rule.memory_limit:
        limits["memory_limit"] = rule.memory_limit
    if rule and rule.cpu_limit:
        limits["cpu_limit"] = rule.cpu_limit
    return limits


def _check_room(settings: Settings, client: HubClient, user: SignedInUser, servers: dict, rule) -> None:
    named = [name for name in servers if name]
    if settings.servers_per_user and len(named) >= settings.servers_per_user:
        raise QuotaExceeded(
            f"User {user.name} already has the maximum of {settings.servers_per_user} named servers."
            "  One must be deleted before a new server can be created"
        )
    if rule and rule.max_servers:
        running = [opts for opts in client.running_servers() if opts.get("access_rule") == rule.name]
        if len(running) >= rule.max_servers:
            raise QuotaExceeded(
                f"Too many servers of access rule '{rule.name}' are running ({rule.max_servers}); try again soon."
            )


@contextmanager
def rule_lock(settings: Settings, rule: AccessRule | None, deadline: float) -> Iterator[None]:
    """Launches of one rule with ``max_servers`` count and start one at a time, across web workers.

    Held from counting the rule's servers until the hub has the new one (``start_server`` answers within
    the hub's slow-spawn timeout), so two launches at once cannot both see the last free place.
    """
    if not (rule and rule.max_servers):
        yield
        return
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(rule.name.encode()).hexdigest()[:16]
    with open(settings.run_dir / f"access-rule-{digest}.lock", "a") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HubError(
                        "Launch timed out waiting for other launches of its access rule.", status=504
                    ) from None
                time.sleep(RULE_LOCK_POLL)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def launch(
    settings: Settings,
    client: HubClient,
    user: SignedInUser,
    rule: AccessRule | None,
    user_options: dict,
    deadline: float,
) -> Iterator[Event]:
    """Open (or start) ``user``'s server for the repository in ``user_options``; launch events, never raises."""
    server = server_name_for(user_options["repo_url"])
    options = dict(user_options, access_rule=rule.name if rule else "", limits=rule_limits(rule))
    started = False
    try:
        model = client.user(user.name)
        if model is None:
            yield Event.failed(f"There is no hub user {user.name}; sign out and sign in again.", 403)
            return
        current = (model.get("servers") or {}).get(server)
        if current is None:
            with rule_lock(settings, rule, deadline):
                _check_room(settings, client, user, model.get("servers") or {}, rule)
                with slot(settings, client, options["repo_url"]):
                    client.start_server(user.name, options, server)
            started = True
        else:
            yield Event.launching(f"You already run {options['repo_url']}: opening that server.")
        if not (current and current.get("ready")):
            yield from follow(client, user.name, server, deadline)
        token = client.new_server_token(user.name, server, expires_in=settings.cull_max_age or None)["token"]
    except QuotaExceeded as exc:
        yield Event.failed(exc.message, exc.status)
        return
    except HubError as exc:
        if started:
            _stop_quietly(client, user.name, server)
        yield Event.failed(exc.message, exc.status)
        return
    url = f"{addresses.public_url(settings)}user/{quote(user.name)}/{server}/"
    yield Event.ready(f"server running at {url}", **options, token=token, url=url)


def _stop_quietly(client: HubClient, user: str, server: str) -> None:
    try:
        client.stop_server(user, server)
    except HubError:
        pass  # the culler stops what is left
