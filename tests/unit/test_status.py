"""``binderlite status``: what an operator sees, with systemd, the hub and Docker faked; TLS from a local server."""

import datetime
import json
import os
import socket
import sqlite3
import ssl
import threading
import time

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from binderlite.builds.queue import SCHEMA
from binderlite.cli import main
from binderlite.errors import HubError
from binderlite.services import status
from binderlite.settings import Settings

NAMES = ["registry", "proxy", "hub", "web", "scheduler"]


def systemctl(states: dict[str, str], target: str = "loaded"):
    """A fake ``systemctl show``: each unit's ActiveState (and SubState), then the target's LoadState."""

    def show(units):
        blocks = []
        for unit in units[:-1]:
            name = unit.removeprefix("binderlite-").removesuffix(".service")
            active = states.get(name, "active")
            sub = "running" if active == "active" else "auto-restart"
            blocks.append(f"LoadState=loaded\nActiveState={active}\nSubState={sub}\nMainPID=42\nNRestarts=3")
        blocks.append(f"LoadState={target}\nActiveState=active\nSubState=active\nMainPID=0\nNRestarts=0")
        return "\n\n".join(blocks) + "\n"

    return show


class FakeHub:
    def __init__(self, users=None, error=None):
        self._users, self.error = users or [], error

    def users(self, state=""):
        if self.error:
            raise self.error
        return self._users


@pytest.fixture
def settings(tmp_path):
    return Settings(state_dir=str(tmp_path / "state"))


def test_units_states_come_from_systemd_when_installed(settings):
    services = status.all_services(settings, find=lambda name: name)
    rows = status.service_states(settings, services, systemctl({"hub": "activating"}))
    assert [r["name"] for r in rows] == NAMES
    hub = rows[2]
    assert hub == {
        "name": "hub",
        "via": "binderlite-hub.service",
        "state": "activating (auto-restart)",
        "ok": False,
        "pid": 42,
        "restarts": 3,
    }
    assert all(r["ok"] for r in rows if r["name"] != "hub")


def test_without_units_the_up_children_are_read_from_their_pid_files(settings):
    settings.ensure_dirs()
    (settings.run_dir / "web.pid").write_text(f"{os.getpid()}\n")
    (settings.run_dir / "hub.pid").write_text("999999999\n")  # a process that is gone
    services = status.all_services(settings, find=lambda name: name)
    rows = {r["name"]: r for r in status.service_states(settings, services, systemctl({}, target="not-found"))}
    assert rows["web"] == {"name": "web", "via": "binderlite up", "state": "running", "ok": True, "pid": os.getpid()}
    assert rows["hub"]["state"] == "not running" and not rows["hub"]["ok"]
    assert not (settings.run_dir / "hub.pid").exists()


def test_running_servers_and_a_hub_that_does_not_answer(settings):
    users = [
        {
            "name": "fixture-ab12",
            "servers": {
                "": {
                    "ready": True,
                    "last_activity": "2026-11-27T10:00:00Z",
                    "user_options": {"repo_url": "https://example.org/r.git", "ref": "abc"},
                }
            },
        }
    ]
    found = status.running_servers(settings, FakeHub(users))
    assert found["count"] == 1 and found["servers"][0]["repo"] == "https://example.org/r.git"
    down = status.running_servers(settings, FakeHub(error=HubError("JupyterHub is not reachable; is it running?")))
    assert down == {"ok": False, "error": "JupyterHub is not reachable; is it running?", "count": None, "servers": []}
    no_token = status.running_servers(settings)
    assert not no_token["ok"] and "binderlite prepare makes it" in no_token["error"]


def test_builds_are_counted_from_the_queue_database(settings):
    assert status.builds(settings) == {"queued": 0, "running": 0, "active": [], "error": None}
    settings.ensure_dirs()
    db = sqlite3.connect(settings.db_path)
    db.executescript(SCHEMA)
    for i, state in enumerate(["queued", "running", "queued", "built", "failed"]):
        db.execute(
            "INSERT INTO builds (id, image, repo_url, ref, content_provider, state, created) VALUES (?,?,?,?,?,?,?)",
            (f"b{i}", f"img{i}", "https://example.org/r.git", "main", "git", state, time.time() + i),
        )
    db.commit()
    db.close()
    found = status.builds(settings)
    assert (found["running"], found["queued"]) == (1, 2)
    assert [b["id"] for b in found["active"]] == ["b0", "b1", "b2"]


def self_signed(tmp_path, days: int):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "cert.pem", tmp_path / "key.pem"


@pytest.fixture
def tls_server(tmp_path):
    """A TLS server on 127.0.0.1 with a self-signed certificate valid for 30 more days."""
    cert, key = self_signed(tmp_path, days=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_a_self_signed_certificate_is_read_and_said_to_be_unverified(tls_server):
    cert = status.certificate(f"https://localhost:{tls_server}/")
    assert cert["ok"] and not cert["verified"]
    assert cert["days_left"] in (29, 30)
    assert "self-signed" in cert["verify_error"] or "self signed" in cert["verify_error"]
    assert cert["subject"] == "CN=localhost"
    expired = status.certificate(f"https://localhost:{tls_server}/", now=time.time() + 31 * 86400)
    assert not expired["ok"] and expired["error"] == "the certificate has expired"


def test_no_certificate_for_http_and_a_clear_error_when_nothing_answers():
    assert status.certificate("http://127.0.0.1:8000/") is None
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    down = status.certificate(f"https://127.0.0.1:{port}/", timeout=2)
    assert not down["ok"] and down["error"].startswith(f"no TLS answer from 127.0.0.1:{port}")


@pytest.fixture
def faked(monkeypatch, settings):
    monkeypatch.setattr(status, "_systemctl_show", systemctl({"web": "failed"}))
    real = status.running_servers
    monkeypatch.setattr(status, "running_servers", lambda s: real(s, FakeHub(error=HubError("down"))))
    monkeypatch.setattr(
        status,
        "disk",
        lambda s: {"path": "/var/lib/docker", "percent_used": 91.0, "high_water": 85, "low_water": 70,
                   "above_high_water": True, "error": None},
    )  # fmt: skip


def test_the_report_names_what_is_down(settings, faked):
    report = status.collect(settings)
    assert report.problems == [
        "web is failed (auto-restart)",
        "the hub does not answer: down",
        "disk 91.0% used, above high water 85%",
    ]
    text = status.render(report)
    assert text.startswith("binderlite: PROBLEMS\n  ! web is failed (auto-restart)\n")
    assert "servers     unknown: down" in text
    assert "disk        91.0% used of /var/lib/docker (GC above 85%, down to 70%)" in text
    assert "  web        failed (auto-restart)" in text


def test_cli_exits_4_when_something_is_down_and_json_is_parseable(settings, faked, tmp_path):
    config = tmp_path / "binderlite.toml"
    config.write_text(f'state_dir = "{settings.state_dir}"\n')
    text = CliRunner().invoke(main, ["--config", str(config), "status"])
    assert text.exit_code == 4 and "binderlite: PROBLEMS" in text.output
    result = CliRunner().invoke(main, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 4
    data = json.loads(result.output)
    assert data["ok"] is False and data["tls"] is None
    assert [s["ok"] for s in data["services"]] == [True, True, True, False, True]
