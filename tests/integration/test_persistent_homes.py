"""Persistent homes on the real stack in authenticated mode: work survives the culler, the repo's files come fresh.

Users are real hub users made through binderlite's service token (no sign-in is
needed for what this tests); their named servers start with the user_options
the launcher gives. The quota is tiny so a few KiB go over it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time

import docker.errors
import pytest
import requests

from binderlite.errors import HubError
from binderlite.hub import addresses, homes
from binderlite.hub.api import HubClient
from binderlite.scheduler import cull as culler
from binderlite.services import backup, supervisor, table
from binderlite.settings import Settings
from tests.helpers.localusers import local_users
from tests.helpers.stack import binderlite_cli, fake_resolved, running_stack, service_state_dir
from tests.integration.conftest import HUB_NETWORKS, HUB_PORTS, HUB_REGISTRY

pytestmark = pytest.mark.integration

SERVER = "bltest-notes"
QUOTA = "16K"


@pytest.fixture(scope="module")
def authstack(docker_client):
    """A registry + proxy + hub in authenticated mode with persistent homes named ``bltest-home-…``."""
    state_dir = service_state_dir("bltest-homes-")
    settings = Settings(
        state_dir=str(state_dir),
        registry=HUB_REGISTRY,
        launch_timeout=180,
        auth_mode="authenticated",
        home_quota=QUOTA,
        home_volume_prefix="bltest-home-",
        **HUB_PORTS,
        **HUB_NETWORKS,
    )
    stack = table.core_services(settings)
    try:
        # the hub signs in local accounts (PAM), so its users are accounts of this machine
        with (
            local_users("bltest-alice", "bltest-bob", "bltest-carol", "bltest-mallory"),
            running_stack(settings, stack, docker_client),
        ):
            try:
                yield settings
            finally:  # named servers first: the hub deletes no user whose named server runs
                client = HubClient(settings)
                for user in client.users():
                    for name in user.get("servers") or {}:
                        try:
                            client.stop_server(user["name"], name)
                        except HubError:
                            pass  # already stopping
    finally:
        for service in stack:
            print(f"---- {service.name} log (end)\n{supervisor.log_tail(settings, service.name)}")
        for volume in docker_client.volumes.list(filters={"label": f"binderlite.instance={state_dir}"}):
            volume.remove(force=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def user_options(image: str) -> dict:
    """What the launcher asks the hub for (launch/__init__.py), for a repository never fetched."""
    resolved = fake_resolved("bltest/notes")
    return {
        "image": image,
        "repo_url": resolved.repo_url,
        "binder_ref_url": resolved.ref_url,
        "binder_request": resolved.binder_request,
        "binder_persistent_request": resolved.binder_persistent_request,
    }


def start(settings: Settings, user: str, image: str) -> tuple[str, str, list[str]]:
    """Start ``user``'s server SERVER; (its URL, a token for it, the spawn's progress messages)."""
    client = HubClient(settings)
    began = time.monotonic()
    client.start_server(user, user_options(image), server=SERVER)
    print(f"start_server answered after {time.monotonic() - began:.2f} s")
    messages = []
    for event in client.progress(user, time.monotonic() + 120, server=SERVER):
        assert not event.get("failed"), event
        messages.append(event.get("message", ""))
    token = client.new_server_token(user, SERVER)["token"]
    return f"{addresses.public_url(settings)}user/{user}/{SERVER}/", token, messages


def contents(url: str, token: str, path: str, text: str | None = None) -> requests.Response:
    """Read (or, with ``text``, write) a file through the server's contents API, as the user's browser does."""
    api = f"{url}api/contents/{path}"
    headers = {"Authorization": f"token {token}"}
    if text is None:
        return requests.get(api, headers=headers, timeout=30)
    body = {"type": "file", "format": "text", "content": text}
    return requests.put(api, headers=headers, data=json.dumps(body), timeout=30)


def the_home(settings: Settings, user: str) -> homes.Home:
    found = [h for h in homes.list_homes(settings) if h.user == user and h.server == SERVER]
    assert len(found) == 1, homes.list_homes(settings)
    return found[0]


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """``binderlite ARGS`` as an admin runs it on this stack."""
    env = {**os.environ, **settings.to_environment(), "BINDERLITE_CONFIG": "/dev/null"}
    return subprocess.run([*binderlite_cli(), *args], env=env, capture_output=True, text=True, timeout=120)


def test_work_survives_the_culler_and_the_repository_comes_fresh(authstack, launch_image, docker_client, tmp_path):
    client = HubClient(authstack)
    client.create_user("bltest-alice")
    url, token, messages = start(authstack, "bltest-alice", launch_image)
    assert not any("quota" in m for m in messages), messages
    assert contents(url, token, "persistent/results.txt", "kept\n").status_code == 201
    assert contents(url, token, "scratch.txt", "from the image's home\n").status_code == 201
    assert contents(url, token, "persistent/big.txt", "x" * 20_000).status_code == 201  # over the 16K quota

    quick = dataclasses.replace(authstack, cull_idle_timeout=3, cull_max_age=0)
    time.sleep(6)
    culled = culler.cull(quick)
    assert ("bltest-alice", SERVER) in [(d.user, d.server) for d in culled]
    assert not any(d.delete_user for d in culled), "a signed-in user is never deleted by the culler"
    model = client.user("bltest-alice")
    assert model is not None and SERVER not in (model.get("servers") or {})
    home = the_home(authstack, "bltest-alice")
    assert home.volume.startswith("bltest-home-bltest-alice-") and home.over_quota and not home.enforced

    url, token, messages = start(authstack, "bltest-alice", launch_image)
    assert contents(url, token, "persistent/results.txt").json()["content"] == "kept\n"
    assert contents(url, token, "scratch.txt").status_code == 404, "outside the folder, the home is the image's"
    assert contents(url, token, "requirements.txt").status_code == 200, "the repository's files are in the home"
    warning = [m for m in messages if "over its quota of 16.0K" in m]
    assert warning and "~/persistent holds" in warning[0], messages

    listed = cli(authstack, "homes", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if "bltest-alice" in row)
    assert "16.0K (measured)" in line and "OVER QUOTA" in line and home.volume in line

    refused = cli(authstack, "homes", "remove", "bltest-alice", SERVER)
    assert refused.returncode != 0 and "in use by a running server" in refused.stderr
    assert home.volume in [v.name for v in docker_client.volumes.list()]


def test_each_users_folder_is_their_own_and_a_backup_brings_it_back(authstack, launch_image, docker_client, tmp_path):
    client = HubClient(authstack)
    for user in ("bltest-bob", "bltest-carol"):
        client.create_user(user)
    url, token, _ = start(authstack, "bltest-bob", launch_image)
    assert contents(url, token, "persistent/mine.txt", "bob's\n").status_code == 201
    carol_url, carol_token, _ = start(authstack, "bltest-carol", launch_image)
    assert contents(carol_url, carol_token, "persistent/mine.txt").status_code == 404
    assert the_home(authstack, "bltest-bob").volume != the_home(authstack, "bltest-carol").volume
    client.stop_server("bltest-carol", SERVER)

    archive = tmp_path / "backup.tar.gz"
    names = backup.backup(authstack, str(tmp_path / "no-config.toml"), archive)
    volume = the_home(authstack, "bltest-bob").volume
    assert f"homes/{volume}.tar" in names

    HubClient(authstack).stop_server("bltest-bob", SERVER)
    removed = cli(authstack, "homes", "remove", "bltest-bob")
    assert removed.returncode == 0 and f"removed {volume}" in removed.stdout
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)

    fresh = authstack.with_overrides(state_dir=str(service_state_dir("bltest-homes-restore-")))
    try:  # another machine's state dir: the live hub's database is not replaced under it
        restored = backup.restore(lambda: fresh, str(tmp_path / "restored.toml"), archive, lambda s: [])
    finally:
        shutil.rmtree(fresh.state_dir, ignore_errors=True)
    assert volume in [str(path) for path in restored]
    url, token, _ = start(authstack, "bltest-bob", launch_image)
    assert contents(url, token, "persistent/mine.txt").json()["content"] == "bob's\n"
    assert contents(url, token, "persistent/again.txt", "still mine\n").status_code == 201, "uid 1000 owns it"


def test_a_foreign_image_is_refused_before_any_folder_is_made(authstack):
    client = HubClient(authstack)
    client.create_user("bltest-mallory")
    with pytest.raises(HubError) as refused:
        client.start_server("bltest-mallory", user_options(authstack.base_image), server=SERVER)
        for event in client.progress("bltest-mallory", time.monotonic() + 60, server=SERVER):
            assert not event.get("ready"), "a foreign image started"
            if event.get("failed"):
                raise HubError(event.get("message", ""))
    assert "not built by binderlite" in refused.value.message
    assert not [h for h in homes.list_homes(authstack) if h.user == "bltest-mallory"]
