"""`binderlite up` as a user runs it, and a real browser opening a Binder link on it.

Starts the whole appliance (registry, proxy, hub, web app, scheduler) with
`binderlite up` on test ports, opens `/v2/git/<escaped url>/main` in headless
Chromium, watches the log and phase, and ends on JupyterLab with the repo's
files. A screenshot is saved under test-artifacts/. Then SIGTERM stops it all.
"""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from binderlite.settings import Settings
from tests.helpers import launchlog
from tests.helpers.browser import WEB, appliance_env, chromium, running_appliance
from tests.helpers.images import builds_of_image
from tests.helpers.kernel import run_code
from tests.helpers.parallel import run_at_once
from tests.helpers.stack import binderlite_cli
from tests.helpers.streams import STREAM_HEADERS, final_event, read_events, stream_events

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def appliance(git_server, settings, docker_client):
    with running_appliance(docker_client) as up:
        yield up


def test_browser_opens_link_sees_log_and_lands_in_jupyterlab(appliance, git_server):
    git_server.add_fixture("requirements", "browser")
    link = f"{WEB}/v2/{git_server.link('browser')}?urlpath=lab/tree/index.ipynb"
    ARTIFACTS.mkdir(exist_ok=True)
    browser = chromium()
    try:
        browser.get(link)
        WebDriverWait(browser, 60).until(
            lambda b: (
                "Waiting" in b.page_source or "Step" in b.page_source or "#" in b.find_element(By.TAG_NAME, "pre").text
            )
        )
        browser.save_screenshot(str(ARTIFACTS / "launch-page-building.png"))
        WebDriverWait(browser, 600).until(lambda b: "/user/" in b.current_url)
        WebDriverWait(browser, 120).until(lambda b: "index.ipynb" in b.page_source and "JupyterLab" in b.title)
        time.sleep(3)
        browser.save_screenshot(str(ARTIFACTS / "jupyterlab.png"))
        assert "/lab/tree/index.ipynb" in browser.current_url
    finally:
        browser.quit()


def test_cli_launch_prints_a_working_url(appliance, git_server):
    git_server.add_fixture("requirements", "cli-launch")
    out = subprocess.run(
        [*binderlite_cli(), "launch", git_server.url("cli-launch"), "--ref", "main"],
        env=appliance_env(appliance["state"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    url = out.stdout.strip().splitlines()[-1]
    assert "/user/" in url and "?token=" in url
    base, token = url.split("?token=")
    assert requests.get(f"{base}api/status", params={"token": token}, timeout=30).status_code == 200


def test_two_simultaneous_launches_of_an_unbuilt_repo_share_one_build(appliance, git_server):
    git_server.add_fixture("requirements", "shared-build")
    link = f"{WEB}/build/{git_server.link('shared-build')}"
    outcomes = run_at_once(lambda: stream_events(link, deadline=600), 2, 700)
    assert len(outcomes) == 2 and all(isinstance(events, list) for events in outcomes), outcomes
    finals = [final_event(events) for events in outcomes]
    assert [e["phase"] for e in finals] == ["ready", "ready"], finals
    assert finals[0]["url"] != finals[1]["url"], "each launch gets its own server"
    assert builds_of_image(Settings(state_dir=str(appliance["state"])).db_path, finals[0]["image"]) == 1


@pytest.fixture(scope="module")
def binderhub_client(tmp_path_factory) -> Path:
    """BinderHub's JS client from npm, as an ES module node can import."""
    root = tmp_path_factory.mktemp("bltest-js")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(root), "@jupyterhub/binderhub-client@0.5"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    lib = root / "node_modules" / "@jupyterhub" / "binderhub-client" / "lib"
    module = lib / "client.mjs"  # the package ships ESM without "type": "module"
    module.write_text((lib / "client.js").read_text())
    return module


def test_binderhub_js_client_launches_unchanged(appliance, git_server, binderhub_client):
    import json

    git_server.add_fixture("requirements", "js-client")
    script = Path(__file__).with_name("js") / "binderhub_client_launch.mjs"
    out = subprocess.run(
        ["node", str(script), str(binderhub_client), f"{WEB}/build/", git_server.link("js-client")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    phases = [e.get("phase") for e in events]
    assert phases[-1] == "ready", out.stdout[-3000:] + out.stderr[-2000:]
    assert "launching" in phases and ("built" in phases)
    ready = events[-1]
    assert run_code(ready["url"], ready["token"], "1+1") == "2"


def test_launches_and_failures_are_in_the_event_log(appliance, git_server):
    if not (git_server.served / "js-client.git").exists():  # run alone: the image is built first
        git_server.add_fixture("requirements", "js-client")
    link, missing = git_server.link("js-client"), git_server.link("js-client", "no-such-branch")
    spec, missing_spec = link[len("git/") :], missing[len("git/") :]
    headers = {**STREAM_HEADERS, "Origin": "https://site.example"}
    with requests.get(f"{WEB}/build/{link}", headers=headers, stream=True, timeout=(5, 60)) as response:
        ready = final_event(read_events(response)[0])
    assert ready["phase"] == "ready", ready
    assert final_event(stream_events(f"{WEB}/build/{missing}", deadline=120))["phase"] == "failed"
    path = appliance["state"] / "logs" / "launches.jsonl"
    deadline = time.monotonic() + 5  # the line is written as the stream ends, after the client has its event
    while not (path.exists() and missing_spec in path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = launchlog.lines(path)
    for line in logged:  # this test's two, and every launch the tests before it made through the web app
        launchlog.validate(line)
    success, failure = [line for line in logged if line["spec"] in (spec, missing_spec)][-2:]
    assert (success["spec"], success["provider"], success["status"]) == (spec, "Git", "success")
    assert re.fullmatch("[0-9a-f]{40}", success["ref"]) and ready["binder_persistent_request"].endswith(success["ref"])
    assert success["origin"] == WEB.split("//")[1] and success["request_origin"] == "https://site.example"
    assert (failure["spec"], failure["status"], failure["ref"]) == (missing_spec, "failure", "")
    assert "no-such-branch" in failure["reason"] and failure["request_origin"] == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_up_stops_everything_on_sigterm(appliance):
    proc = appliance["proc"]
    pids = [int(p.read_text()) for p in (appliance["state"] / "run").glob("*.pid")]
    assert len(pids) >= 5, pids
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
