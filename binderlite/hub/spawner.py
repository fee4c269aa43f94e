"""BinderSpawner: DockerSpawner that starts only images binderlite built.

The launcher passes ``user_options`` as BinderHub does (image, repo_url,
binder_*), but no token: the launch token is minted by the hub for this one
server before the spawn (``HubClient.new_server_token``), so it never sits in
``user_options``, which the hub stores in its database and shows to every
reader of the server model. The image must be on this machine and carry
repo2docker's label (a name prefix is not enough: the base image shares it);
nothing is ever pulled.

The container runs as uid 1000 on binderlite's servers network (whose rules
``ensure_network`` checks before each spawn) with no capabilities at all,
``no-new-privileges`` (a setuid binary the repository planted gives it
nothing), an init process that reaps orphans, and memory (no swap), CPU and
process limits. In authenticated mode a signed-in user's persistent folder
(``hub/homes.py``) is mounted inside the home, and a quota overrun is said in
the spawn's progress.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from docker.errors import APIError, DockerException
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Callable, Integer, Unicode, default

from binderlite.builds.registry import BUILT_LABEL
from binderlite.errors import BinderliteError
from binderlite.hub import homes

BINDER_ENV_OPTIONS = (
    "binder_ref_url",
    "binder_launch_host",
    "binder_persistent_request",
    "binder_request",
)


def binder_environment(user_options: dict) -> dict[str, str]:
    """What a launch adds to a server's environment, on every backend: BinderHub's ``BINDER_*`` variables,
    and the token in the launch link allowed (BinderHub's contract needs ``?token=`` to work)."""
    env = {"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}
    if "repo_url" in user_options:
        env["BINDER_REPO_URL"] = str(user_options["repo_url"])
    for key in BINDER_ENV_OPTIONS:
        if key in user_options:
            env[key.upper()] = str(user_options[key])
    return env


JOVYAN_UID = "1000"


class BinderSpawner(DockerSpawner):
    """One container per launch, from a binderlite-built image, for one token."""

    instance = Unicode("", config=True, help="Names this binderlite install in container labels (its state_dir).")
    pids_limit = Integer(0, config=True, help="Process limit per container; 0 means none.")
    docker_threads = Integer(8, config=True, help="Threads for Docker API calls, shared by all spawners.")
    ensure_network = Callable(
        None,
        allow_none=True,
        config=True,
        help="Called in a thread before each spawn: makes sure the servers' network and its rules are in place.",
    )
    ensure_home = Callable(
        None,
        allow_none=True,
        config=True,
        help="Called in a thread with (user, server) before each spawn when users keep their work: returns the "
        "persistent folder's Home (binderlite.hub.homes), mounted at persistent_folder in the image's home.",
    )
    persistent_folder = Unicode("persistent", config=True, help="Folder inside the home the persistent volume goes.")

    _binder_executor: ThreadPoolExecutor | None = None
    _home_notes: list[str] | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        cls = BinderSpawner
        if cls._binder_executor is None:
            cls._binder_executor = ThreadPoolExecutor(self.docker_threads)
        return cls._binder_executor

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return ["jupyterhub-singleuser"]

    async def check_allowed(self, image: str) -> str:
        """Allow only images on this machine that binderlite (repo2docker) built."""
        try:
            info = await self.docker("inspect_image", image)
        except APIError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                raise web.HTTPError(
                    400, f"Image {image} is not on this machine; build it with binderlite first."
                ) from None
            raise
        labels = (info.get("Config") or {}).get("Labels") or {}
        if BUILT_LABEL not in labels:
            raise web.HTTPError(
                400,
                f"Image {image} was not built by binderlite (no {BUILT_LABEL} label); refusing to start it.",
            )
        return image

    async def start(self):
        if not self.user_options.get("image"):
            raise web.HTTPError(400, "user_options must include 'image'")
        if "token" in self.user_options:
            raise web.HTTPError(400, "user_options must not carry a token (the hub stores and shows them).")
        self.extra_create_kwargs = {
            "user": JOVYAN_UID,
            "labels": {
                "binderlite.managed": "1",
                "binderlite.instance": self.instance,
                "binderlite.user": self.user.name,
                "binderlite.server": self.name,
            },
        }
        # An access rule's limits (authenticated mode), put there by binderlite's launcher: users cannot
        # start servers with options of their own (their hub role has no servers scope).
        limits = self.user_options.get("limits") or {}
        if limits.get("memory_limit"):
            self.mem_limit = limits["memory_limit"]
        if limits.get("cpu_limit"):
            self.cpu_limit = float(limits["cpu_limit"])
        if self.ensure_network is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self.executor, self.ensure_network)
            except BinderliteError as exc:
                raise web.HTTPError(500, f"Servers cannot be confined, so none starts: {exc.message}") from None
        self._home_notes = None
        if self.ensure_home is not None:
            await self._mount_home(self.user_options["image"])
        self._home_notes = self._home_notes or []
        host_config = {
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "init": True,
        }
        if self.mem_limit:
            host_config["memswap_limit"] = self.mem_limit
        if self.pids_limit:
            host_config["pids_limit"] = self.pids_limit
        self.extra_host_config = host_config
        ip, port = await super().start()
        await self._wait_until_answering(ip, port)
        return ip, port

    async def _mount_home(self, image: str) -> None:
        """Mount the user's persistent folder for this server (made and measured first); note a quota overrun."""
        await self.check_allowed(image)  # a foreign or missing image is refused before any folder is made
        info = await self.docker("inspect_image", image)
        try:
            home = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.ensure_home, self.user.name, self.name
            )
        except BinderliteError as exc:
            raise web.HTTPError(500, f"The persistent folder could not be prepared: {exc.message}") from None
        target = homes.mount_target((info.get("Config") or {}).get("Env"), self.persistent_folder)
        self.volumes = {home.volume: {"bind": target, "mode": "rw"}}
        note = homes.quota_note(home, self.persistent_folder)
        self._home_notes = [note] if note else []
        if note:
            self.log.warning("%s/%s: %s", self.user.name, self.name, note)

    async def progress(self):
        """The hub's "Spawning server..." and then, once the folder is measured, a quota warning if there is one."""
        yield {"progress": 50, "message": "Spawning server..."}
        while self.ensure_home is not None and self._spawn_pending and self._home_notes is None:
            await asyncio.sleep(0.1)
        for note in self._home_notes or []:
            yield {"progress": 60, "message": note}

    async def _wait_until_answering(self, ip: str, port: int) -> None:
        """Return as soon as the server answers HTTP (polled every 50 ms).

        The hub's own readiness check backs off exponentially (up to 5 s between
        tries), which added about 2 s to every launch; when start() returns only
        once the server answers, the hub's first check succeeds. A bare TCP
        connect is not enough: Docker's port proxy accepts before the server does.
        If the container exits first (a broken ``start`` script, say), fail at once
        with its last output instead of waiting for the launch timeout.
        """
        request = f"GET {self.server.base_url}api HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode()
        output: deque[str] = deque(maxlen=15)
        follower = await self._follow_output(output)
        try:
            deadline = time.monotonic() + self.start_timeout
            next_poll = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + 0.5
                    status = await self.poll()
                    if status is not None:
                        await asyncio.sleep(0.2)  # the last lines of output
                        # 400: the repository (start script, environment) is at fault; the hub shows 4xx reasons
                        raise web.HTTPError(
                            400,
                            f"The server stopped while starting (exit status {status}). "
                            "Its last output:\n" + "\n".join(output),
                        )
                try:
                    reader, writer = await asyncio.open_connection(ip, port)
                    writer.write(request)
                    await writer.drain()
                    answer = await asyncio.wait_for(reader.read(5), timeout=2)
                    writer.close()
                    if answer.startswith(b"HTTP/"):
                        return
                except (TimeoutError, OSError):
                    pass
                await asyncio.sleep(0.05)
        finally:
            if follower is not None:
                follower.close()

    async def _follow_output(self, output: deque):
        """Copy the container's output into ``output`` in a thread; return the stream to close."""
        try:
            stream = await self.docker("logs", self.container_id, stream=True, follow=True)
        except DockerException:
            return None

        def copy() -> None:
            try:
                for chunk in stream:
                    output.extend(chunk.decode("utf-8", "replace").splitlines())
            except Exception:  # the stream is closed under us once the server is up
                pass

        asyncio.get_running_loop().run_in_executor(None, copy)
        return stream

    def get_env(self) -> dict[str, str]:
        return {**super().get_env(), **binder_environment(self.user_options)}
