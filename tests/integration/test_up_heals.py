"""`binderlite up` heals itself: `kill -9` each of its services in turn, with a server running and a build in flight.

Each service comes back with a new pid (and `up` says so), the running server
keeps answering through the proxy with its token after every restart, the
build started before the kills finishes (followed again through the restarted
web app, never built twice), a new launch works, and a service that keeps dying
makes `up` give up: everything stopped, a non-zero exit, the service's log shown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from binderlite.settings import Settings
from tests.helpers.browser import WEB, running_appliance
from tests.helpers.images import builds_of_image
from tests.helpers.kernel import run_code
from tests.helpers.streams import STREAM_HEADERS, final_event, stream_events

pytestmark = pytest.mark.integration
ORDER = ["registry", "proxy", "hub", "web", "scheduler"]  # then any other service `up` runs (the package index)
SLOW_POSTBUILD = "#!/bin/bash\nsleep 45\n"  # keeps the build in flight while every service is killed


@pytest.fixture(scope="module")
def appliance(git_server, docker_client):
    with running_appliance(docker_client) as up:
        yield up


def up_output(appliance) -> str:
    return (appliance["state"] / "logs" / "up.log").read_text(errors="replace")


def pid_of(appliance, name: str) -> int:
    return int((appliance["state"] / "run" / f"{name}.pid").read_text())


def wait_back(appliance, name: str, old_pid: int, timeout: float = 150) -> int:
    """Wait for `up` to print `<name> is back (pid N)` with a new pid; return N."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert appliance["proc"].poll() is None, up_output(appliance)[-4000:]
        pids = [int(p) for p in re.findall(rf"^{name} is back \(pid (\d+)\)$", up_output(appliance), re.M)]
        if pids and pids[-1] != old_pid and Path(f"/proc/{pids[-1]}").exists():
            return pids[-1]
        time.sleep(0.5)
    pytest.fail(f"{name} did not come back within {timeout} s:\n{up_output(appliance)[-4000:]}")


def server_answers(url: str, token: str, timeout: float = 90) -> None:
    """The server answers through the proxy with its token (retrying while the routes come back)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        try:
            status = requests.get(f"{url}api/status", params={"token": token}, timeout=10).status_code
            if status == 200:
                return
        except requests.RequestException as exc:
            status = repr(exc)
        time.sleep(1)
    pytest.fail(f"the server at {url} stopped answering (last: {status})")


def start_build_and_leave(link: str) -> None:
    """Ask for a build, read its stream until it is building, then go away (as a closed tab does)."""
    with requests.get(link, headers=STREAM_HEADERS, stream=True, timeout=(5, 120)) as response:
        assert response.status_code == 200
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: ") and json.loads(line[len("data: ") :]).get("phase") == "building":
                return
    pytest.fail("the build never reached the building phase")


def test_every_service_comes_back_after_kill_9_and_users_never_notice(appliance, git_server):
    git_server.add_fixture("requirements", "heal-running")
    ready = final_event(stream_events(f"{WEB}/build/{git_server.link('heal-running')}"))
    assert ready["phase"] == "ready", ready
    server, token = ready["url"], ready["token"]
    assert run_code(server, token, "1+1") == "2"

    git_server.add_fixture("requirements", "heal-slow")
    postbuild = git_server.work_tree("heal-slow") / "postBuild"
    postbuild.write_text(SLOW_POSTBUILD)
    postbuild.chmod(0o755)
    git_server.commit("heal-slow", "a slow postBuild")
    start_build_and_leave(f"{WEB}/build/{git_server.link('heal-slow')}")

    running = sorted(p.stem for p in (appliance["state"] / "run").glob("*.pid"))
    names = [n for n in ORDER if n in running] + [n for n in running if n not in ORDER]
    assert set(ORDER) <= set(names), running
    for name in names:
        old = pid_of(appliance, name)
        os.kill(old, signal.SIGKILL)
        new = wait_back(appliance, name, old)
        assert f"{name} (pid {old}) died with signal 9; restarting in 1 s" in up_output(appliance)
        assert new != old
        server_answers(server, token)
    assert "restarting hub so that it gives the new proxy the servers' routes" in up_output(appliance)
    assert requests.get(f"{WEB}/health", timeout=10).status_code == 200

    followed = stream_events(f"{WEB}/build/{git_server.link('heal-slow')}")
    ready = final_event(followed)
    assert ready["phase"] == "ready", followed[-5:]
    db = Settings(state_dir=str(appliance["state"])).db_path
    assert builds_of_image(db, ready["image"]) == 1, "the build in flight was followed again, not started over"
    assert run_code(ready["url"], ready["token"], "1+1") == "2"
    server_answers(server, token)


def test_a_service_that_keeps_dying_makes_up_give_up_loudly(appliance):
    proc = appliance["proc"]
    kills = 0
    while proc.poll() is None and kills < 6:  # the scheduler may have died once already, in the test above
        old = pid_of(appliance, "scheduler")
        os.kill(old, signal.SIGKILL)
        kills += 1
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            after = up_output(appliance).split(f"scheduler (pid {old}) died")
            if len(after) > 1 and "scheduler is back (pid" in after[-1]:
                break
            time.sleep(0.5)
    assert proc.wait(timeout=120) == 4, up_output(appliance)[-3000:]
    out = up_output(appliance)
    assert re.search(r"scheduler \(pid \d+\) died with signal 9; restarting in 8 s", out), out[-3000:]
    assert "giving up on it (5 deaths within 120 s), stopping binderlite" in out
    assert "Stopping binderlite..." in out and "scheduler.log:" in out
    assert "scheduler running: cull every" in out.split("giving up on it")[-1], "the end of its log is shown"
    assert not list((appliance["state"] / "run").glob("*.pid")), "every service was stopped"
