"""Launch a built image for one Binder request through JupyterHub's REST API.

``launch()`` is a generator of BinderHub events: ``launching`` messages (ours
and the hub's spawn progress), then one ``ready`` event with the server's URL
and token, or one ``failed`` event. It never raises: every failure ends the
stream with ``failed`` and removes the temporary user it created. Quotas, retries
with backoff and the launch timeout follow BinderHub's launcher.

For a signed-in user (authenticated mode, ``launch(..., user=…)``) there is no
temporary user: the server is the user's named server for the repository
(``server_name_for``), reopened when it runs already, and a new one counts
against ``servers_per_user`` and the access rule's ``max_servers``.

An anonymous launch first asks the warm pool (``launch/pool.py``) for a
ready server of exactly this image: if there is one, ``ready`` follows at
once, with a token that opens only that server, and nothing is spawned.
Signed-in launches always spawn their own named server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import requests

from binderlite.errors import HubError
from binderlite.events import Event
from binderlite.hub import addresses
from binderlite.hub.api import HubClient
from binderlite.hub.identity import SignedInUser
from binderlite.launch import pool, quotas, signed_in
from binderlite.launch.names import server_name_for, username_for
from binderlite.launch.progress import follow
from binderlite.links import ResolvedRepo
from binderlite.settings import AccessRule, Settings

log = logging.getLogger("binderlite.launch")
__all__ = ["launch", "server_name_for", "username_for"]


def launch(
    settings: Settings,
    resolved: ResolvedRepo,
    image: str,
    *,
    retry_delay: float = 4.0,
    session: requests.Session | None = None,
    user: SignedInUser | None = None,
    rule: AccessRule | None = None,
) -> Iterator[Event]:
    """Start ``image`` for ``resolved`` and yield BinderHub launch events (never raises).

    ``user``: launch as that signed-in user's named server (authenticated mode),
    within the limits of the access ``rule`` that allowed it.
    """
    yield Event.launching("Launching server...")
    deadline = time.monotonic() + settings.launch_timeout
    client = HubClient(settings, session)
    user_options = {
        "image": image,
        "repo_url": resolved.repo_url,
        "binder_ref_url": resolved.ref_url,
        "binder_launch_host": settings.binder_launch_host,
        "binder_request": resolved.binder_request,
        "binder_persistent_request": resolved.binder_persistent_request,
    }
    if user is not None:
        yield from signed_in.launch(settings, client, user, rule, user_options, deadline)
        return
    try:
        pooled = pool.take(settings, client, image)
    except Exception as exc:  # the pool is a shortcut: without it, the launch spawns as usual
        log.warning("warm pool: could not take a server (%s: %s); spawning", exc.__class__.__name__, exc)
        pooled = None
    if pooled is not None:
        name, token = pooled
        url = f"{addresses.public_url(settings)}user/{name}/"
        yield Event.ready(f"server running at {url} (from the warm pool)", **user_options, token=token, url=url)
        return
    attempts = settings.launch_retries
    delay = retry_delay
    for attempt in range(1, attempts + 1):
        name = username_for(resolved.repo_url)
        started = False
        token = ""
        try:
            with quotas.slot(settings, client, resolved.repo_url):
                client.create_user(name)
                token = client.new_server_token(name)["token"]
                client.start_server(name, user_options)
            yield from follow(client, name, "", deadline)
            started = True
        except quotas.QuotaExceeded as exc:
            yield Event.failed(exc.message, exc.status)
            return
        except HubError as exc:
            error = exc
        except Exception as exc:  # a launch must end in an event, whatever happened
            error = HubError(f"Unexpected error while launching: {exc!r}", retryable=False)
        finally:  # also when the consumer closes the stream mid-launch
            if not started:
                client.delete_user(name)
        if started:
            url = f"{addresses.public_url(settings)}user/{name}/"
            yield Event.ready(f"server running at {url}", **user_options, token=token, url=url)
            return
        if not error.retryable or attempt == attempts or time.monotonic() + delay > deadline:
            yield Event.failed(error.message, error.status)
            return
        yield Event.launching(f"Launch attempt {attempt} failed ({error.message}), retrying in {delay:g} s...")
        time.sleep(delay)
        delay *= 2
