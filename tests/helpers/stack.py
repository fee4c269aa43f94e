"""binderlite's services run as ``binderlite up`` runs them, and launches on them.

``running_stack`` starts services of ``binderlite.services.table`` through the
supervisor on a temporary state dir; afterwards it deletes the hub's users,
stops the services and removes the stack's containers, even when the block failed.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors

from binderlite import launch
from binderlite.errors import HubError
from binderlite.hub.api import HubClient
from binderlite.links import ResolvedRepo
from binderlite.services import supervisor, table
from binderlite.services.table import Service
from binderlite.settings import Settings
from tests.helpers.containers import remove_stack_containers, stack_label
from tests.helpers.diagnostics import watching


def binderlite_cli() -> list[str]:
    """The ``binderlite`` command (the installed one, else the module)."""
    exe = shutil.which("binderlite")
    return [exe] if exe else ["python", "-m", "binderlite.cli"]


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a process we started, SIGKILL it if it has not exited after ``timeout`` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def service_state_dir(prefix: str) -> Path:
    """A new folder the service user (the proxy, the registry) can enter: in the system temp dir, mode 0711.

    Not below pytest's temp folders: pytest makes ``pytest-of-<user>`` 0700 again whenever a session
    starts, so any other session on the machine would lock the services out of a running stack.
    The caller removes it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


def delete_hub_users(settings: Settings) -> None:
    """Delete every user of the stack's hub (their servers stop); nothing if the hub does not answer."""
    try:
        client = HubClient(settings)
        for user in client.users():
            client.delete_user(user["name"])
    except HubError:
        pass


@contextmanager
def running_stack(
    settings: Settings, services: list[Service], client: docker.DockerClient, container_wait: float = 30
) -> Iterator[Settings]:
    """Start ``services`` (in order) for ``settings``; yield the settings; clean everything up after."""
    with watching(settings.state_dir):
        try:
            supervisor.start_all(settings, services)
            yield settings
        finally:
            delete_hub_users(settings)
            supervisor.stop_all(settings, services)
            remove_stack_containers(client, settings, wait=container_wait)


def fake_resolved(name: str = "bltest/r1") -> ResolvedRepo:
    """A resolved repository that was never fetched: enough to launch an already built image."""
    sha = "0" * 40
    repo_url = f"http://127.0.0.1:9/{name}.git"
    return ResolvedRepo(
        provider="git",
        spec=f"{name}/HEAD",
        repo_url=repo_url,
        unresolved_ref="HEAD",
        resolved_ref=sha,
        resolved_spec=f"{name}/{sha}",
        ref_url=f"{repo_url}/tree/{sha}",
        build_slug=name,
    )


def launch_ready(settings: Settings, image: str, name: str = "bltest/r1") -> dict:
    """Launch ``image`` and return the ready event, failing with all events otherwise."""
    events = list(launch.launch(settings, fake_resolved(name), image, retry_delay=0.2))
    assert events[-1]["phase"] == "ready", f"launch did not end ready: {events}"
    return events[-1]


def user_of(ready: dict) -> str:
    """The temporary user a ready event's server belongs to (the last part of its URL)."""
    return ready["url"].rstrip("/").rsplit("/", 1)[-1]


def server_container(client: docker.DockerClient, settings: Settings, user: str):
    """The one running container of ``user``'s server in this stack."""
    found = client.containers.list(filters={"label": [stack_label(settings), f"binderlite.user={user}"]})
    assert len(found) == 1, found
    return found[0]


@contextmanager
def core_stack(settings_in: Callable[[str], Settings], docker_client, prefix: str) -> Iterator[Settings]:
    """Registry + proxy + hub (as ``binderlite up`` starts them) for ``settings_in(state_dir)``.

    Their logs are printed and the state dir removed afterwards.
    """
    state_dir = service_state_dir(prefix)
    settings = settings_in(str(state_dir))
    stack = table.core_services(settings)
    try:
        with running_stack(settings, stack, docker_client):
            yield settings
    finally:
        for service in stack:
            print(f"---- {service.name} log (end)\n{supervisor.log_tail(settings, service.name)}")
        shutil.rmtree(state_dir, ignore_errors=True)
