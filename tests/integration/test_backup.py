"""Back up a live install and restore it elsewhere: the hub started from the copy knows the same user and server."""

from __future__ import annotations

import shutil
import tarfile

import pytest

from binderlite.hub.api import HubClient
from binderlite.services import backup, supervisor, table
from tests.helpers.kernel import run_code
from tests.helpers.stack import launch_ready, service_state_dir, user_of

pytestmark = pytest.mark.integration


def test_backup_while_serving_then_restore_into_a_fresh_state_dir(launch_image, hubstack, tmp_path):
    ready = launch_ready(hubstack, launch_image, name="bltest/backup")
    user = user_of(ready)
    archive = tmp_path / "binderlite-backup.tar.gz"
    names = backup.backup(hubstack, str(tmp_path / "no-config.toml"), archive)  # while the hub serves
    assert "state/hub/jupyterhub.sqlite" in names and "state/hub/proxy_token" in names
    with tarfile.open(archive) as tar:
        assert not any("registry" in n or n.endswith(".log") for n in tar.getnames())

    fresh_dir = service_state_dir("bltest-restore-")
    fresh = hubstack.with_overrides(state_dir=str(fresh_dir))
    supervisor.stop(hubstack, "hub")  # the machine's hub stops; the proxy and the user's server keep running
    try:
        restored = backup.restore(lambda: fresh, str(tmp_path / "no-config.toml"), archive, lambda s: [])
        assert fresh.hub_dir / "jupyterhub.sqlite" in restored
        supervisor.start(fresh, table.hub_service(fresh))
        try:
            model = HubClient(fresh).user(user)  # the restored service token is accepted by the restored hub
            assert model is not None, f"the restored hub does not know {user}"
            assert model["servers"][""]["ready"] is True
            assert run_code(ready["url"], ready["token"], "1+1") == "2"  # the launch token was restored too
        finally:
            supervisor.stop(fresh, "hub")
    finally:
        supervisor.start(hubstack, table.hub_service(hubstack))
        shutil.rmtree(fresh_dir, ignore_errors=True)
