"""Attacks on the hub side, performed on the real stack: a repository that records every request its server gets."""

from __future__ import annotations

import dataclasses
import json
import time
from urllib.parse import parse_qs

import pytest
import requests

from binderlite.hub import addresses as hub
from binderlite.hub.api import HubClient, ProxyClient, server_scope
from binderlite.scheduler import cull as culler
from tests.helpers.images import build_fixture
from tests.helpers.stack import launch_ready, server_container, user_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recorder_image(settings, git_server) -> str:
    image, _ = build_fixture(settings, git_server, "header-recorder")
    return image


def _seen_requests(docker_client, settings, user: str) -> list[dict]:
    container = server_container(docker_client, settings, user)
    code, out = container.exec_run(["cat", "/home/jovyan/seen-requests.jsonl"])
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()] if code == 0 else []


def _credentials(entry: dict) -> set[str]:
    found = set()
    auth = entry.get("authorization") or ""
    if auth.lower().startswith(("token ", "bearer ")):
        found.add(auth.split(None, 1)[1].strip())
    found.update(parse_qs(entry.get("query") or "").get("token", []))
    return found


def _route_activity(settings, path: str) -> str | None:
    routes = ProxyClient(settings).routes()
    return (routes.get(path.rstrip("/")) or {}).get("last_activity")


def test_culler_sends_user_servers_no_credential_beyond_that_server(hubstack, recorder_image, docker_client):
    ready = launch_ready(hubstack, recorder_image, name="bltest/recorder")
    user = user_of(ready)
    other = launch_ready(hubstack, recorder_image, name="bltest/bystander")
    client, proxy = HubClient(hubstack), ProxyClient(hubstack)
    path = f"/user/{user}/"
    time.sleep(4)
    before = culler.probe(client, user, "", {"url": path}, proxy.routes())
    route_before = _route_activity(hubstack, path)
    assert before is not None, "the culler can ask the server about itself"

    quick = dataclasses.replace(hubstack, cull_idle_timeout=2, cull_max_age=0)
    decisions = culler.cull(quick, dry_run=True)
    assert user in [d.user for d in decisions], "an idle server would be culled"

    seen = _seen_requests(docker_client, hubstack, user)
    probes = [e for e in seen if e["path"].startswith(f"{path}api/") and "no_track_activity" in e["query"]]
    assert probes, f"the culler asked the server directly: {seen}"
    tokens = set().union(*(_credentials(e) for e in seen))
    tokens.discard(ready["token"])  # the user's own launch token, which opens only this server
    service = {"Authorization": f"token {hub.hub_api_token(hubstack)}"}
    api = hub.hub_url(hubstack) + "/hub/api"
    for token in tokens:
        assert token != hub.hub_api_token(hubstack), "binderlite's own token reached a user's server"
        headers = {"Authorization": f"token {token}"}
        assert requests.get(f"{api}/users", headers=headers, timeout=10).status_code == 403
        assert requests.post(f"{api}/users/{user}/tokens", headers=headers, json={}, timeout=10).status_code == 403
        peer = requests.get(f"{other['url']}api/status", headers=headers, timeout=10)
        assert peer.status_code == 403, "a token the server saw opens another user's server"
        whoami = requests.get(f"{api}/user", headers=headers, timeout=10)
        if whoami.status_code == 200:  # still valid: it may open this server and nothing more
            scopes = set(whoami.json().get("scopes", [])) - {f"read:users:name!user={user}", f"read:users!user={user}"}
            assert scopes <= {server_scope(user, "")}, scopes
    # the service role keeps only what binderlite calls
    role = requests.get(f"{api}/user", headers=service, timeout=10).json()
    assert "access:servers" not in role["scopes"] and "admin:servers" not in role["scopes"], role["scopes"]

    # asking changed no idle clock: not the server's own, not the proxy's
    after = culler.probe(client, user, "", {"url": path}, proxy.routes())
    assert after.last_activity == before.last_activity, "a dry run must not count as activity"
    assert _route_activity(hubstack, path) == route_before


def test_launch_token_is_not_kept_in_the_hub(hubstack, recorder_image):
    ready = launch_ready(hubstack, recorder_image, name="bltest/tokenstore")
    user = user_of(ready)
    model = HubClient(hubstack).user(user)
    assert ready["token"] not in json.dumps(model), "the launch token is readable from the hub API"
    database = (hubstack.hub_dir / "jupyterhub.sqlite").read_bytes()
    assert ready["token"].encode() not in database, "the launch token is stored in clear"


def test_twenty_concurrent_launches_against_a_quota_of_three(hubstack, launch_image):
    from concurrent.futures import ThreadPoolExecutor

    from binderlite.launch import launch
    from tests.helpers.stack import fake_resolved

    quota = dataclasses.replace(hubstack, total_quota=3, per_repo_quota=0)
    client = HubClient(hubstack)
    before = {user["name"] for user in client.users()}
    for name in before:  # servers of earlier tests count against the quota
        client.delete_user(name)

    def one(i: int) -> dict:
        return list(launch(quota, fake_resolved(f"bltest/crowd{i}"), launch_image, retry_delay=0.2))[-1]

    with ThreadPoolExecutor(20) as pool:
        finals = list(pool.map(one, range(20)))
    ready = [f for f in finals if f["phase"] == "ready"]
    refused = [f for f in finals if f["phase"] == "failed"]
    assert len(ready) == 3, [f["message"] for f in finals]
    assert len(refused) == 17
    assert all(f["status_code"] == 429 and "Too many users on this BinderHub!" in f["message"] for f in refused)
    running = [u for u in client.users(state="active") if u.get("servers")]
    assert len(running) == 3, "the hub runs exactly the quota"


def test_state_is_private_and_proxy_and_registry_are_not_root(hubstack):
    import os
    import stat

    from binderlite.services import supervisor

    state = hubstack.hub_dir.parent
    assert stat.S_IMODE(state.stat().st_mode) == 0o711
    for folder in (hubstack.hub_dir, hubstack.logs_dir, hubstack.run_dir, hubstack.build_logs_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    database = hubstack.hub_dir / "jupyterhub.sqlite"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600, "the hub's database is root's alone"
    for name in ("proxy", "registry"):
        pid = supervisor.running_pid(hubstack, name)
        uid = int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("Uid:")).split()[1])
        assert uid != 0 and uid == os.stat(hubstack.registry_dir).st_uid, f"{name} runs as uid {uid}"
