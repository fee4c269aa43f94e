"""The admin page: who may open it (local, remote, proxied, admin token, hub admin or not), CSRF, the actions.

The hub and Docker are faked at the edges (``admin_data``'s readers, the hub
client); the app, its cookies, the CSRF tokens and the build queue are real.
"""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from binderlite.builds import worker
from binderlite.builds.queue import BuildQueue
from binderlite.hub.identity import SignedInUser
from binderlite.hub.tokens import persistent_secret
from binderlite.scheduler import runner, runs
from binderlite.settings import Settings
from binderlite.web import admin_actions, admin_data, signin
from binderlite.web.app import create_app

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}
SERVER = admin_data.ServerRow(
    user="bltest-r1-abc", server="", repository="https://git.example/lab/r1.git", image="bltest-r1:1",
    started=datetime.now(UTC), last_activity=None, ready=True, memory=150 * 1024**2,
)  # fmt: skip
IMAGE = admin_data.ImageRow(
    id="sha256:" + "a" * 64, tags=["bltest-r1:1"], size=900 * 1024**2, last_launched=time.time() - 120,
    containers=1, building=False, build_id=None,
)  # fmt: skip


def view() -> admin_data.Overview:
    disk = admin_data.Disk("/var/lib/docker", 40 * 1024**3, 100 * 1024**3, 85, 70)
    return admin_data.Overview(servers=[SERVER], images=[IMAGE], disk=disk)


@pytest.fixture
def make_client(tmp_path, monkeypatch):
    monkeypatch.setattr(admin_data, "overview", lambda settings: view())

    def make(**overrides):
        app = create_app(Settings(state_dir=str(tmp_path), **overrides))
        return app.test_client()

    return make


def words(page) -> str:
    """The page's text with runs of whitespace as one space."""
    return " ".join(html.unescape(page.get_data(as_text=True)).split())


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize("peer, status", [("::1", 200), ("::ffff:127.0.0.1", 200), ("::ffff:203.0.113.7", 403)])
def test_loopback_is_this_machine_in_either_address_family(make_client, peer, status):
    assert make_client().get("/admin/", environ_base={"REMOTE_ADDR": peer}).status_code == status


def test_from_this_machine_the_page_lists_servers_images_and_disk(make_client):
    page = make_client().get("/admin/")
    assert page.status_code == 200
    text = words(page)
    assert "bltest-r1-abc" in text and "https://git.example/lab/r1.git" in text and "150.0 MiB" in text
    assert "bltest-r1:1" in text and "900.0 MiB" in text and "2 min ago" in text and "1 container" in text
    assert "40% used" in text and "above 85% down to 70%" in text
    cookie = page.headers["Set-Cookie"]
    assert "Path=/admin" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


@pytest.mark.parametrize(
    "environ, headers",
    [
        (REMOTE, {}),
        ({}, {"X-Forwarded-For": "203.0.113.7"}),  # a local reverse proxy (Caddy) passing a remote request on
        ({}, {"Forwarded": "for=203.0.113.7"}),
        ({}, {"X-Real-IP": "203.0.113.7"}),
    ],
    ids=["remote", "x-forwarded-for", "forwarded", "x-real-ip"],
)
def test_a_remote_or_proxied_request_without_the_token_gets_403(make_client, environ, headers):
    page = make_client().get("/admin/", environ_base=environ, headers=headers)
    assert page.status_code == 403
    text = words(page)
    assert "from this machine (127.0.0.1) only" in text and "set <code>admin_token</code>" in text
    assert "bltest-r1-abc" not in text and 'name="token"' not in text  # no token set: no form


def test_the_admin_token_typed_once_opens_the_page_from_anywhere(make_client, tmp_path):
    client = make_client(admin_token="s3cret-admin-token")
    denied = client.get("/admin/", environ_base=REMOTE, headers={"X-Forwarded-For": "203.0.113.7"})
    assert denied.status_code == 403 and 'name="token"' in denied.get_data(as_text=True)
    csrf = csrf_of(denied.get_data(as_text=True))
    assert client.post("/admin/token", data={"token": "s3cret-admin-token"}, environ_base=REMOTE).status_code == 400
    wrong = client.post("/admin/token", data={"token": "guess", "csrf_token": csrf}, environ_base=REMOTE)
    assert wrong.status_code == 403 and "not the admin token" in wrong.get_data(as_text=True)
    right = client.post("/admin/token", data={"token": "s3cret-admin-token", "csrf_token": csrf}, environ_base=REMOTE)
    assert right.status_code == 303 and right.headers["Location"].endswith("/admin/")
    assert "s3cret-admin-token" not in right.headers["Set-Cookie"] and "token" not in right.headers["Location"]
    page = client.get("/admin/", environ_base=REMOTE, headers={"X-Forwarded-For": "203.0.113.7"})
    assert page.status_code == 200 and "Admin token accepted" in page.get_data(as_text=True)
    # a new token signs that browser out
    rotated = create_app(Settings(state_dir=str(tmp_path), admin_token="another-token")).test_client()
    rotated.set_cookie("binderlite-admin", client.get_cookie("binderlite-admin", path="/admin").value, path="/admin")
    assert rotated.get("/admin/", environ_base=REMOTE).status_code == 403


def test_without_an_admin_token_setting_the_token_form_opens_nothing(make_client):
    client = make_client()
    csrf = csrf_of(client.get("/admin/").get_data(as_text=True))
    answer = client.post("/admin/token", data={"token": "", "csrf_token": csrf}, environ_base=REMOTE)
    assert answer.status_code == 403
    assert client.get("/admin/", environ_base=REMOTE).status_code == 403


@pytest.fixture
def signed_in(tmp_path, monkeypatch):
    """A client of the authenticated mode, signed in as the user ``token`` names (a hub admin or not)."""
    monkeypatch.setattr(admin_data, "overview", lambda settings: view())
    users = {"tok-root": SignedInUser("root", admin=True), "tok-bob": SignedInUser("bob")}
    monkeypatch.setattr(signin, "identify", lambda settings, token: users.get(token))
    settings = Settings(state_dir=str(tmp_path), auth_mode="authenticated", admin_token="s3cret-admin-token")

    def client_of(token: str | None):
        client = create_app(settings).test_client()
        if token:
            client.set_cookie(signin.COOKIE, signin.session_cookie_value(settings, token), path="/admin")
        return client

    return client_of


def test_signed_in_only_hub_admins_see_the_page(signed_in):
    assert signed_in("tok-root").get("/admin/").status_code == 200
    refused = signed_in("tok-bob").get("/admin/")
    assert refused.status_code == 403
    assert "for the hub's admins (admin_users) only; bob is not one" in words(refused)
    assert signed_in("tok-bob").get("/admin/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403
    signed_out = signed_in(None).get("/admin/")
    assert signed_out.status_code == 302 and "/hub/api/oauth2/authorize" in signed_out.headers["Location"]


def test_an_action_without_the_csrf_token_is_refused_and_does_nothing(make_client, monkeypatch):
    stopped = []
    monkeypatch.setattr(
        admin_actions, "stop_server", lambda s, u, n: stopped.append((u, n)) or admin_actions.Done("ok")
    )
    client = make_client()
    for data in ({"user": "bltest-r1-abc"}, {"user": "bltest-r1-abc", "csrf_token": "forged"}):
        answer = client.post("/admin/servers/stop", data=data)
        assert answer.status_code == 400 and "CSRF" in answer.get_data(as_text=True)
    assert stopped == []
    csrf = csrf_of(client.get("/admin/").get_data(as_text=True))
    done = client.post("/admin/servers/stop", data={"user": "bltest-r1-abc", "server": "", "csrf_token": csrf})
    assert done.status_code == 303 and stopped == [("bltest-r1-abc", "")]


def test_a_remote_post_is_refused_before_anything_else(make_client):
    assert make_client().post("/admin/servers/stop", data={"user": "x"}, environ_base=REMOTE).status_code == 403


def test_unknown_or_malformed_targets_get_a_clear_page_not_a_500(make_client, monkeypatch):
    monkeypatch.setattr(admin_data, "hub_servers", lambda settings: [])
    client = make_client()
    csrf = csrf_of(client.get("/admin/").get_data(as_text=True))
    answers = {
        "/admin/servers/stop": ({"user": "nobody"}, 404, "no running server 'nobody'"),
        "/admin/builds/nope/stop": ({}, 404, "There is no build 'nope'"),
        "/admin/builds/nope/rebuild": ({}, 404, "There is no build"),
        "/admin/images/delete": ({"image": "../../containers"}, 400, "is not an image id"),
    }
    for path, (data, status, message) in answers.items():
        answer = client.post(path, data={**data, "csrf_token": csrf})
        assert answer.status_code == status, path
        assert message in words(answer), path
    assert client.post("/admin/servers/stop", data={"csrf_token": csrf}).status_code == 400
    assert client.get("/admin/builds/nope").status_code == 404


def test_builds_show_their_log_stop_and_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(BuildQueue, "dispatch", lambda self: [])
    settings = Settings(state_dir=str(tmp_path))
    queue = BuildQueue(settings)
    build, _ = queue.request("bltest-r1:1", "https://git.example/lab/r1.git", "a" * 40, "git")
    client = create_app(settings).test_client()
    monkeypatch.setattr(admin_data, "hub_servers", lambda settings: [])
    monkeypatch.setattr(
        admin_data,
        "docker_client",
        lambda settings: (_ for _ in ()).throw(admin_data.BinderliteError("no Docker here")),
    )
    page = client.get("/admin/").get_data(as_text=True)
    assert f'href="/admin/builds/{build.id}"' in page and "queued" in page and "no Docker here" in page
    assert "Waiting for build to start" in client.get(f"/admin/builds/{build.id}").get_data(as_text=True)
    csrf = csrf_of(page)
    stopped = client.post(f"/admin/builds/{build.id}/stop", data={"csrf_token": csrf}, follow_redirects=True)
    assert f"Stopped build {build.id}" in stopped.get_data(as_text=True)
    assert queue.get(build.id).state == "failed"
    assert "Build stopped by an administrator." in client.get(f"/admin/builds/{build.id}").get_data(as_text=True)
    again = client.post(f"/admin/builds/{build.id}/stop", data={"csrf_token": csrf}, follow_redirects=True)
    assert "had already ended (failed)" in again.get_data(as_text=True)
    rebuilt = client.post(f"/admin/builds/{build.id}/rebuild", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Rebuilding https://git.example/lab/r1.git at aaaaaaaaaaaa" in rebuilt.get_data(as_text=True)
    (new,) = queue.builds(("queued",))
    assert (new.image, new.ref) == ("bltest-r1:1", "a" * 40) and new.id != build.id


def test_stopping_a_running_build_signals_its_worker(tmp_path):
    settings = Settings(state_dir=str(tmp_path))
    queue = BuildQueue(settings)
    build, _ = queue.request("bltest-r1:1", "https://git.example/lab/r1.git", "a" * 40, "git")
    worker = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with queue._db() as db:
        db.execute(
            "UPDATE builds SET state = 'running', started = ?, pid = ? WHERE id = ?",
            (time.time(), worker.pid, build.id),
        )
    assert queue.stop(build.id, "Build stopped by an administrator.\n")
    assert worker.wait(timeout=10) == -15  # SIGTERM
    assert queue.get(build.id).state == "failed"
    assert not queue.finish(build.id, "succeeded", "late\n")  # the worker's own result no longer counts


def test_scheduler_runs_are_recorded_bounded_and_failures_said(tmp_path):
    settings = Settings(state_dir=str(tmp_path))
    for n in range(runs.KEEP + 10):
        runs.record_run(settings, "cull", float(n), 0.1, "nothing to do")
    runner._safely(settings, "disk-gc", lambda: {"removed_images": 2, "expired_logs": 0})()
    runner._safely(settings, "reconcile", lambda: 1 / 0)()
    recent = runs.recent_runs(settings, limit=100)
    assert [r.job for r in recent].count("cull") == runs.KEEP
    assert recent[0].job == "reconcile" and recent[0].result.startswith("failed: ZeroDivisionError")
    assert recent[1].result == "removed images 2"
    assert runner.read_counts(settings) == {"removed_images": 2, "expired_logs": 0}


def test_a_worker_told_to_stop_stops_repo2docker_too(tmp_path, monkeypatch):
    """SIGTERM (what ``BuildQueue.stop`` sends) ends ``run_builder`` and the builder's own process group."""
    (tmp_path / "bltest_slow_builder.py").write_text(
        'import time\nprint(\'{"phase": "building", "message": "Step 1/9"}\', flush=True)\ntime.sleep(120)\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(worker, "RUN_REPO2DOCKER", "bltest_slow_builder")
    started = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(worker.subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1])
    settings = Settings(state_dir=str(tmp_path / "state"))
    build, _ = BuildQueue(settings).request("bltest-r1:1", "https://git.example/lab/r1.git", "a" * 40, "git")
    log = BuildQueue(settings).log(build.id)
    previous = signal.signal(signal.SIGTERM, worker._stopped)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(worker.BuildStopped):
            worker.run_builder(settings, build, log, tmp_path)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert started[0].poll() is not None  # the builder is gone, not left running
    assert "Step 1/9" in "".join(ev.message for ev in log.read_from(0)[0])


def test_a_secret_many_workers_make_at_once_is_one_and_never_empty(tmp_path):
    """gunicorn's workers start together and each reads the cookie secret (the admin page's session key)."""
    barrier = threading.Barrier(8)

    def make(path):
        barrier.wait()
        return persistent_secret(path)

    for n in range(20):
        path = tmp_path / f"hub{n}" / "web_cookie_secret"
        with ThreadPoolExecutor(8) as pool:
            values = set(pool.map(make, [path] * 8))
        assert len(values) == 1 and "" not in values, values
        assert [p.name for p in path.parent.iterdir()] == ["web_cookie_secret"]
