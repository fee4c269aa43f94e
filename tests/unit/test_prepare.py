"""``binderlite prepare``: what the services need, made once, kept on every later run (Docker and users faked)."""

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from binderlite.cli import main
from binderlite.errors import ConfigError
from binderlite.services import prepare as prep
from binderlite.settings import Settings


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """No Docker, no iptables, no useradd: record what prepare asked for."""
    calls = {"networks": 0, "users": []}

    def networks(settings, force=False):
        assert force, "prepare runs after a reboot: the rules must be made again, not trusted"
        calls["networks"] += 1

    def user(name):
        calls["users"].append(name)
        return pwd.getpwuid(os.getuid())

    monkeypatch.setattr(prep, "check_prerequisites", lambda settings: None)
    monkeypatch.setattr(prep, "ensure_networks", networks)
    monkeypatch.setattr(prep, "ensure_user", user)
    monkeypatch.setattr(prep, "SANDBOX_MOUNTS", tmp_path / "sandbox-mounts")
    monkeypatch.setattr("binderlite.hub.addresses.server_network_gateway", lambda settings: "172.31.0.1")
    monkeypatch.setattr("binderlite.services.table.shutil.which", lambda name: f"/usr/bin/{name}")
    return calls


@pytest.fixture
def state_dir():
    """A state dir the service user could reach (under the system temp dir, not pytest's private one)."""
    path = Path(tempfile.mkdtemp(prefix="bltest-prepare-"))
    path.chmod(0o711)
    yield path / "state"
    shutil.rmtree(path)


def secrets(settings):
    return {p.name: p.read_text() for p in settings.hub_dir.iterdir()}


def test_prepare_makes_everything_once_and_changes_nothing_the_second_time(tmp_path, state_dir, fakes):
    settings = Settings(state_dir=str(state_dir), allow_local_repos=True, sandbox_user="blsand")
    said = []
    services = prep.prepare(settings, echo=said.append)
    env = settings.run_dir / "proxy.env"
    assert [s.name for s in services] == ["registry", "proxy", "hub", "web", "scheduler"]
    assert said == [f"wrote {env}"]
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    token = (settings.hub_dir / "proxy_token").read_text().strip()
    assert env.read_text() == f"BINDERLITE_HUB_URL=http://172.31.0.1:8081\nCONFIGPROXY_AUTH_TOKEN={token}\n"
    assert set(secrets(settings)) == {"proxy_token", "service_token", "jupyterhub_cookie_secret"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in settings.hub_dir.iterdir())
    assert "rootdirectory: " + str(settings.registry_dir) in (settings.registry_dir / "config.yml").read_text()
    assert stat.S_IMODE((tmp_path / "sandbox-mounts").stat().st_mode) == 0o755
    assert {"blsand", "blsand-local"} <= set(fakes["users"])

    before = secrets(settings), env.stat().st_mtime_ns
    said.clear()
    prep.prepare(settings, echo=said.append)
    assert said == []
    assert (secrets(settings), env.stat().st_mtime_ns) == before
    assert fakes["networks"] == 2


def test_a_new_hub_address_rewrites_the_proxys_environment(state_dir, fakes, monkeypatch):
    settings = Settings(state_dir=str(state_dir))
    prep.prepare(settings)
    monkeypatch.setattr("binderlite.hub.addresses.server_network_gateway", lambda settings: "172.30.0.1")
    said = []
    prep.prepare(settings, echo=said.append)
    assert said == [f"wrote {settings.run_dir / 'proxy.env'}"]
    assert "BINDERLITE_HUB_URL=http://172.30.0.1:8081\n" in (settings.run_dir / "proxy.env").read_text()


def test_prepare_command_says_what_is_missing(tmp_path, fakes, monkeypatch):
    def missing(settings):
        raise ConfigError("configurable-http-proxy is not on PATH: npm install -g configurable-http-proxy@4")

    monkeypatch.setattr(prep, "check_prerequisites", missing)
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{tmp_path}/state"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "prepare"])
    assert result.exit_code == 3
    assert result.output == "Error: configurable-http-proxy is not on PATH: npm install -g configurable-http-proxy@4\n"
