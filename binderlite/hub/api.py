"""The one JupyterHub REST client (and the proxy's), used by the launcher, the scheduler, /health and the tests.

Every call has a timeout; failures become ``HubError`` (part of binderlite's
error tree) saying whether trying again can help. The client carries
binderlite's service token, which holds only the scopes it uses (see
``jupyterhub_config.py``) and is sent to the hub alone: never to a user's
server. What a user's server is asked goes with a token minted for that one
server (``server_token``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from binderlite.errors import HubError
from binderlite.hub import addresses
from binderlite.settings import Settings

REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every hub call
PROGRESS_READ_TIMEOUT = 30.0  # the hub sends a keepalive every few seconds
DELETE_WAIT = 60.0
PAGE_SIZE = 200
PAGINATION = "application/jupyterhub-pagination+json"


def server_scope(user: str, server: str) -> str:
    """The scope that opens exactly one server (``user/`` is the default server)."""
    return f"access:servers!server={user}/{server}"


def _server_path(user: str, server: str) -> str:
    return f"/users/{quote(user)}/servers/{quote(server)}" if server else f"/users/{quote(user)}/server"


class HubClient:
    """JupyterHub's REST API as binderlite uses it, with binderlite's service token."""

    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.settings = settings
        self.api = addresses.hub_url(settings) + "/hub/api"
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"token {addresses.hub_api_token(settings)}"

    # ---- plumbing ---------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to the hub API (``path`` below ``/hub/api``); HubError if the hub does not answer."""
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        try:
            return self.session.request(method, self.api + path, **kwargs)
        except requests.RequestException as exc:
            raise HubError(
                f"JupyterHub is not reachable ({exc.__class__.__name__}); is it running?", retryable=False, status=503
            ) from None

    @staticmethod
    def _message(resp: requests.Response) -> str:
        try:
            return str(resp.json().get("message") or resp.reason)
        except (ValueError, AttributeError):
            return resp.reason or f"HTTP {resp.status_code}"

    def check(self, resp: requests.Response, what: str) -> requests.Response:
        """``resp`` if it succeeded, else HubError (retryable for 5xx, 409 and 429)."""
        if resp.status_code < 400:
            return resp
        retryable = resp.status_code >= 500 or resp.status_code in (409, 429)
        raise HubError(f"{what} failed: {self._message(resp)}", retryable, resp.status_code)

    # ---- users and servers -----------------------------------------------
    def users(self, state: str = "") -> list[dict]:
        """Every user (``state="active"``: those with a running server), all pages."""
        users: list[dict] = []
        offset = 0
        while True:
            params = {"offset": str(offset), "limit": str(PAGE_SIZE), "include_stopped_servers": "false"}
            if state:
                params["state"] = state
            resp = self.call("GET", "/users", params=params, headers={"Accept": PAGINATION})
            page = self.check(resp, "Listing users").json()
            if isinstance(page, list):  # a hub without pagination answers with the whole list
                return page
            users.extend(page.get("items") or [])
            following = (page.get("_pagination") or {}).get("next")
            if not following:
                return users
            offset = int(following["offset"])

    def user(self, name: str) -> dict | None:
        """The user's model, or None if there is no such user."""
        resp = self.call("GET", f"/users/{quote(name)}")
        return None if resp.status_code == 404 else self.check(resp, f"Reading user {name}").json()

    def running_servers(self) -> list[dict]:
        """The ``user_options`` of every active server (pending ones included)."""
        return [
            server.get("user_options") or {}
            for user in self.users(state="active")
            for server in (user.get("servers") or {}).values()
        ]

    def create_user(self, name: str) -> None:
        self.check(self.call("POST", f"/users/{quote(name)}"), f"Creating user {name}")

    def start_server(self, name: str, user_options: dict, server: str = "") -> None:
        self.check(self.call("POST", _server_path(name, server), json=user_options), "Starting the server")

    def stop_server(self, user: str, server: str = "") -> None:
        self.check(self.call("DELETE", _server_path(user, server)), f"Stopping the server of {user}")

    def progress(self, name: str, deadline: float, server: str = "") -> Iterator[dict]:
        """Spawn progress events until ready/failed, or until ``deadline``."""
        url = f"{self.api}{_server_path(name, server)}/progress"
        while time.monotonic() < deadline:
            try:
                with self.session.get(url, stream=True, timeout=(REQUEST_TIMEOUT[0], PROGRESS_READ_TIMEOUT)) as resp:
                    if resp.status_code == 400:  # the spawn ended before we looked
                        raise HubError("The server stopped while starting; see the JupyterHub log.")
                    self.check(resp, "Following the launch")
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
                resp = self.call("DELETE", f"/users/{quote(name)}")
            except HubError:
                return
            if resp.status_code in (204, 404):
                return
            # 400: a spawn or stop is still pending; ask it to stop and try again
            try:
                self.call("DELETE", f"/users/{quote(name)}/server")
            except HubError:
                return
            time.sleep(1.0)

    # ---- tokens that open one server ----------------------------------------
    def new_server_token(
        self, name: str, server: str = "", note: str = "binder launch token", expires_in: int | None = None
    ) -> dict:
        """A token of user ``name`` that opens only ``server`` (``""``: the default one): the hub's model.

        Minted by the hub, which keeps only its hash: the token is in no
        ``user_options``, no spawner state and no hub database row in clear.
        """
        body: dict[str, Any] = {"scopes": [server_scope(name, server)], "note": note}
        if expires_in:
            body["expires_in"] = expires_in
        resp = self.call("POST", f"/users/{quote(name)}/tokens", json=body)
        return self.check(resp, "Minting a server token").json()

    @contextmanager
    def server_token(self, name: str, server: str, note: str, expires_in: int) -> Iterator[str]:
        """A short-lived token that opens only this server, deleted on exit."""
        model = self.new_server_token(name, server, note=note, expires_in=expires_in)
        try:
            yield model["token"]
        finally:
            try:
                self.call("DELETE", f"/users/{quote(name)}/tokens/{quote(model['id'])}")
            except HubError:
                pass  # it expires on its own

    def hub_answers(self, timeout: float = 5) -> bool:
        """True if the hub's API answers (no token needed)."""
        try:
            return requests.get(self.api + "/", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False


class ProxyClient:
    """configurable-http-proxy's REST API (on 127.0.0.1, with the proxy's own token)."""

    def __init__(self, settings: Settings):
        self.api = addresses.proxy_api_url(settings) + "/api/routes"
        self.headers = {"Authorization": f"token {addresses.proxy_auth_token(settings)}"}

    def routes(self) -> dict[str, dict]:
        """The routing table, keyed by path without a trailing ``/``; empty if the proxy does not answer."""
        try:
            resp = requests.get(self.api, headers=self.headers, timeout=REQUEST_TIMEOUT)
            table = resp.json() if resp.ok else {}
        except (requests.RequestException, ValueError):
            return {}
        return {path.rstrip("/"): route for path, route in table.items() if isinstance(route, dict)}

    def add_route(self, path: str, target: str) -> None:
        resp = requests.post(self.api + path, headers=self.headers, json={"target": target}, timeout=REQUEST_TIMEOUT)
        resp.raise_for_status()

    def delete_route(self, path: str) -> bool:
        """Drop a route; False if the proxy did not answer."""
        try:
            requests.delete(self.api + path, headers=self.headers, timeout=REQUEST_TIMEOUT)
        except requests.RequestException:
            return False
        return True
