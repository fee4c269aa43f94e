"""The launch stack for integration tests: registry, proxy and JupyterHub as real processes.

Started through ``binderlite.services`` exactly as ``binderlite up`` starts
them, on non-default ports, Docker networks of its own (``NETWORKS``: a
second install on this machine, never sharing the servers' rules with a real
one) and a temporary state dir. Teardown deletes the
hub's users, removes this stack's containers (even when a test failed) and
prints the end of each service's log.
"""

from __future__ import annotations

import json
import time
import uuid

import docker
import pytest
import requests
import websocket

from binderlite import launch
from binderlite.errors import HubError
from binderlite.hub.api import HubClient
from binderlite.links import ResolvedRepo
from binderlite.services import supervisor, table
from binderlite.settings import Settings

PORTS = {"proxy_port": 18740, "proxy_api_port": 18741, "hub_port": 18781}
NETWORKS = {"server_network": "bltest-srv", "build_network": "bltest-bld"}
REGISTRY = "127.0.0.1:15740"
TEST_PROXY = "http://bltest-proxy.invalid:3128"  # never contacted: the hub is on NO_PROXY


def fake_resolved(name: str = "bltest/r1") -> ResolvedRepo:
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


def remove_stack_containers(client: docker.DockerClient, settings: Settings, wait: float = 30) -> None:
    """Remove this stack's containers; 404/409 mean the hub is already removing them."""
    label = {"label": f"binderlite.instance={settings.state_dir}"}
    deadline = time.monotonic() + wait
    while (containers := client.containers.list(all=True, filters=label)) and time.monotonic() < deadline:
        for container in containers:
            try:
                container.remove(force=True)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):
                    raise
        time.sleep(0.5)


@pytest.fixture(scope="module", name="hubstack")
def hubstack_fixture(tmp_path_factory, docker_client):
    """Settings of a running registry + proxy + hub; everything removed afterwards."""
    state_dir = tmp_path_factory.mktemp("bltest-hub")
    for folder in (state_dir.parent, state_dir.parent.parent):  # pytest's temp folders are 0700; the proxy
        folder.chmod(folder.stat().st_mode | 0o001)  # and the registry run as the service user
    settings = Settings(
        state_dir=str(state_dir),
        registry=REGISTRY,
        launch_timeout=180,
        http_proxy=TEST_PROXY,
        https_proxy=TEST_PROXY,
        **PORTS,
        **NETWORKS,
    )
    stack = table.core_services(settings)
    try:
        supervisor.start_all(settings, stack)
        yield settings
    finally:
        try:
            client = HubClient(settings)
            for user in client.users():
                client.delete_user(user["name"])
        except HubError:
            pass
        supervisor.stop_all(settings, stack)
        remove_stack_containers(docker_client, settings)
        for service in stack:
            print(f"---- {service.name} log (end)\n{supervisor.log_tail(settings, service.name)}")


def launch_ready(settings: Settings, image: str, name: str = "bltest/r1") -> dict:
    """Launch ``image`` and return the ready event, failing the test with all events otherwise."""
    events = list(launch.launch(settings, fake_resolved(name), image, retry_delay=0.2))
    if events[-1]["phase"] != "ready":
        pytest.fail(f"launch did not end ready: {events}")
    return events[-1]


def run_code(url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel through the Jupyter Server REST API, run ``code``, return its result."""
    headers = {"Authorization": f"token {token}"}
    resp = requests.post(f"{url}api/kernels", headers=headers, json={}, timeout=60)
    resp.raise_for_status()
    kernel_id = resp.json()["id"]
    ws_url = url.replace("http://", "ws://", 1) + f"api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "bltest",
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                return msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise AssertionError(f"kernel error: {msg['content']}")
    finally:
        ws.close()
        requests.delete(f"{url}api/kernels/{kernel_id}", headers=headers, timeout=30)
