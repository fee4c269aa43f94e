"""Launch a built image for one Binder request through JupyterHub's REST API.

``launch()`` is a generator of BinderHub events: ``launching`` messages (ours
and the hub's spawn progress), then one ``ready`` event with the server's URL
and token, or one ``failed`` event. It never raises: every failure ends the
stream with ``failed`` and removes the temporary user it created. Quotas, retries
with backoff and the launch timeout follow BinderHub's launcher.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlparse

import requests

from binderlite import hub
from binderlite.providers import ResolvedRepo
from binderlite.settings import Settings

REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every hub call
PROGRESS_READ_TIMEOUT = 30.0  # the hub sends a keepalive every few seconds
DELETE_WAIT = 60.0
USERNAME_CHARS = string.ascii_lowercase + string.digits


class HubError(Exception):
    """A hub call failed; ``retryable`` is False when trying again cannot help."""

    def __init__(self, message: str, retryable: bool = True, status: int = 500):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


def username_for(repo_url: str) -> str:
    """BinderHub's temporary user name: the repo path, ≤32 chars, ``-`` and 8 random chars."""
    if "://" not in repo_url:
        repo_url = "http://" + repo_url
    prefix = urlparse(repo_url).path.strip("/").removesuffix(".git")
    prefix = re.sub(r"[^a-z0-9]+", "-", prefix.replace("/", "-").lower()).strip("-")
    if len(prefix) > 32:
        prefix = f"{prefix[:15]}-{prefix[-16:]}".strip("-")
    suffix = "".join(secrets.choice(USERNAME_CHARS) for _ in range(8))
    return f"{prefix or 'binder'}-{suffix}"


class HubClient:
    """The few JupyterHub API calls a launch makes, with timeouts on all of them."""

    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.api = hub.hub_url(settings) + "/hub/api"
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"token {hub.hub_api_token(settings)}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        try:
            return self.session.request(method, self.api + path, **kwargs)
        except requests.RequestException as exc:
            raise HubError(f"JupyterHub is not reachable at {self.api} ({exc.__class__.__name__})") from None

    @staticmethod
    def _message(resp: requests.Response) -> str:
        try:
            return str(resp.json().get("message") or resp.reason)
        except ValueError:
            return resp.reason or f"HTTP {resp.status_code}"

    def _check(self, resp: requests.Response, what: str) -> requests.Response:
        if resp.status_code < 400:
            return resp
        retryable = resp.status_code >= 500 or resp.status_code in (409, 429)
        raise HubError(f"{what} failed: {self._message(resp)}", retryable, resp.status_code)

    def running_servers(self) -> list[dict]:
        """The ``user_options`` of every active server."""
        resp = self._check(self._call("GET", "/users", params={"state": "active"}), "Listing users")
        return [
            server.get("user_options") or {} for user in resp.json() for server in (user.get("servers") or {}).values()
        ]

    def create_user(self, name: str) -> None:
        self._check(self._call("POST", f"/users/{quote(name)}"), f"Creating user {name}")

    def new_server_token(self, name: str, server: str = "", note: str = "binder launch token") -> str:
        """A token of user ``name`` that opens only its server ``server`` (``""``: the default one).

        Minted by the hub, which keeps only its hash: the token is in no
        ``user_options``, no spawner state and no hub database row in clear.
        """
        body = {"scopes": [f"access:servers!server={name}/{server}"], "note": note}
        resp = self._check(self._call("POST", f"/users/{quote(name)}/tokens", json=body), "Minting the launch token")
        return resp.json()["token"]

    def start_server(self, name: str, user_options: dict) -> None:
        resp = self._call("POST", f"/users/{quote(name)}/server", json=user_options)
        self._check(resp, "Starting the server")

    def progress(self, name: str, deadline: float) -> Iterator[dict]:
        """Spawn progress events until ready/failed, or until ``deadline``."""
        url = f"{self.api}/users/{quote(name)}/server/progress"
        while time.monotonic() < deadline:
            try:
                with self.session.get(url, stream=True, timeout=(REQUEST_TIMEOUT[0], PROGRESS_READ_TIMEOUT)) as resp:
                    if resp.status_code == 400:  # the spawn ended before we looked
                        raise HubError("The server stopped while starting; see the JupyterHub log.")
                    self._check(resp, "Following the launch")
                    for line in resp.iter_lines(decode_unicode=True):
                        if line and line.startswith("data:"):
                            event = json.loads(line[5:])
                            yield event
                            if event.get("ready") or event.get("failed"):
                                return
                        if time.monotonic() > deadline:
                            return
            except requests.RequestException:
                continue  # a read timeout or a dropped stream: reconnect until the deadline

    def delete_user(self, name: str) -> None:
        """Stop the user's server and delete the user; best effort, bounded in time."""
        deadline = time.monotonic() + DELETE_WAIT
        while time.monotonic() < deadline:
            try:
                resp = self._call("DELETE", f"/users/{quote(name)}")
            except HubError:
                return
            if resp.status_code in (204, 404):
                return
            # 400: a spawn or stop is still pending; ask it to stop and try again
            try:
                self._call("DELETE", f"/users/{quote(name)}/server")
            except HubError:
                return
            time.sleep(1.0)


def _quota_message(settings: Settings, client: HubClient, repo_url: str) -> str | None:
    if not (settings.total_quota or settings.per_repo_quota):
        return None
    servers = client.running_servers()
    if settings.total_quota and len(servers) >= settings.total_quota:
        return "Too many users on this BinderHub! Try again soon.\n"
    same_repo = sum(1 for options in servers if options.get("repo_url") == repo_url)
    if settings.per_repo_quota and same_repo >= settings.per_repo_quota:
        return f"Too many users running {repo_url}! Try again soon.\n"
    return None


def launch(
    settings: Settings,
    resolved: ResolvedRepo,
    image: str,
    *,
    retry_delay: float = 4.0,
    session: requests.Session | None = None,
) -> Iterator[dict]:
    """Start ``image`` for ``resolved`` and yield BinderHub launch events (never raises)."""
    yield {"phase": "launching", "message": "Launching server...\n"}
    deadline = time.monotonic() + settings.launch_timeout
    try:
        client = HubClient(settings, session)
        quota = _quota_message(settings, client, resolved.repo_url)
    except HubError as exc:
        yield {"phase": "failed", "status_code": 503, "message": exc.message + "\n"}
        return
    if quota:
        yield {"phase": "failed", "status_code": 429, "message": quota}
        return
    user_options = {
        "image": image,
        "repo_url": resolved.repo_url,
        "binder_ref_url": resolved.ref_url,
        "binder_launch_host": settings.binder_launch_host,
        "binder_request": resolved.binder_request,
        "binder_persistent_request": resolved.binder_persistent_request,
    }
    attempts = max(1, settings.launch_retries)
    delay = retry_delay
    for attempt in range(1, attempts + 1):
        name = username_for(resolved.repo_url)
        started = False
        token = ""
        try:
            client.create_user(name)
            token = client.new_server_token(name)
            yield from _attempt(client, name, user_options, deadline)
            started = True
        except HubError as exc:
            error = exc
        except Exception as exc:  # a launch must end in an event, whatever happened
            error = HubError(f"Unexpected error while launching: {exc!r}", retryable=False)
        finally:  # also when the consumer closes the stream mid-launch
            if not started:
                client.delete_user(name)
        if started:
            url = f"{hub.public_url(settings)}user/{name}/"
            yield {
                "phase": "ready",
                "message": f"server running at {url}\n",
                **user_options,
                "token": token,
                "url": url,
            }
            return
        if not error.retryable or attempt == attempts or time.monotonic() + delay > deadline:
            yield {"phase": "failed", "status_code": error.status, "message": error.message + "\n"}
            return
        yield {
            "phase": "launching",
            "message": f"Launch attempt {attempt} failed ({error.message}), retrying in {delay:g} s...\n",
        }
        time.sleep(delay)
        delay *= 2


def _attempt(client: HubClient, name: str, user_options: dict, deadline: float) -> Iterator[dict]:
    """One try (the user exists): start the server, relay progress; HubError on failure."""
    client.start_server(name, user_options)
    for event in client.progress(name, deadline):
        if event.get("failed"):
            raise HubError(f"Server failed to start: {event.get('message', 'no reason given')}")
        if event.get("message"):
            yield {"phase": "launching", "message": event["message"].rstrip("\n") + "\n"}
        if event.get("ready"):
            return
    raise HubError("Launch timed out: the server did not become ready in time.", retryable=False, status=504)
