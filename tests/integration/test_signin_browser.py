"""Authenticated mode end to end: local accounts sign in through the hub's real login form in headless Chromium.

`binderlite up` runs with ``auth_mode = "authenticated"`` (PAM: local accounts
made for the test), one access rule for the "physics" repositories, and one
server per user. Alice (in the rule's group) opens a physics link signed out,
signs in on the hub's form, comes back to the same launch and lands in her
named server; Bob (not in the group) gets the 403 page for the same, already
built image. Also: the signed-out, forged-cookie and over-quota answers, the
servers page's open/stop, and a user's own hub token that cannot start servers.
"""

from __future__ import annotations

import json
import subprocess
from urllib.parse import quote

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from binderlite import launch
from binderlite.hub.api import HubClient
from binderlite.settings import load_settings
from tests.helpers.browser import WEB, appliance_env, chromium, running_appliance
from tests.helpers.localusers import local_users
from tests.helpers.signin import check_refused, launch_signed_out, web_session
from tests.helpers.stack import binderlite_cli
from tests.helpers.streams import STREAM_HEADERS, read_events

pytestmark = pytest.mark.integration
ALICE, BOB, GROUP = "bltest-alice", "bltest-bob", "bltest-physics"
CONTACT = "physics-it@dept.example"
RULES = [
    {
        "name": "physics-teaching",
        "pattern": "^git/.*bltest-physics-",
        "groups": [GROUP],
        "contact": CONTACT,
        "memory_limit": "1G",
        "cpu_limit": 0.5,
        "max_servers": 5,
    }
]
EXTRA = {
    "BINDERLITE_AUTH_MODE": "authenticated",
    "BINDERLITE_ACCESS_RULES": json.dumps(RULES),
    "BINDERLITE_SERVERS_PER_USER": "1",
}


@pytest.fixture(scope="module")
def department(git_server, docker_client):
    git_server.add_fixture("requirements", "bltest-physics-intro")
    git_server.add_fixture("requirements", "bltest-open-notes")
    # PAM signs Alice in with her local groups as hub groups: bltest-physics is one
    with local_users(ALICE, BOB, groups={GROUP: [ALICE]}) as passwords, running_appliance(docker_client, EXTRA) as up:
        settings = load_settings(environ=appliance_env(up["state"], EXTRA))
        hub = HubClient(settings)
        for name in (ALICE, BOB):
            hub.create_user(name)
        yield {"up": up, "settings": settings, "hub": hub, "passwords": passwords}


def test_signed_out_and_forged_build_requests_get_401_and_no_build(department, git_server):
    url = f"{WEB}/build/{git_server.link('bltest-open-notes')}"
    for cookies in ({}, {"binderlite-session": "forged"}):
        response = requests.get(url, headers=STREAM_HEADERS, cookies=cookies, timeout=30)
        assert response.status_code == 401, response.text
        assert "Sign in first" in response.json()["message"]
    assert not list((department["up"]["state"] / "builds").glob("*")), "a build started"


def test_member_signs_in_through_the_hub_comes_back_to_the_launch_and_reopens_it(department, git_server, docker_client):
    link = f"{WEB}/v2/{git_server.link('bltest-physics-intro')}?urlpath=lab"
    server = launch.server_name_for(git_server.url("bltest-physics-intro"))
    browser = chromium()
    try:
        launch_signed_out(browser, link, ALICE, department["passwords"][ALICE], server)

        browser.get(link)  # the same repository again: the same server, no second one
        WebDriverWait(browser, 120).until(lambda b: f"/user/{ALICE}/{server}/" in b.current_url)
        servers = department["hub"].user(ALICE)["servers"]
        assert list(servers) == [server] and servers[server]["user_options"]["access_rule"] == "physics-teaching"
        (container,) = docker_client.containers.list(filters={"label": [f"binderlite.user={ALICE}"]})
        limits = container.attrs["HostConfig"]
        assert limits["Memory"] == 1024**3 and limits["CpuQuota"] / limits["CpuPeriod"] == 0.5, "the rule's limits"
        department["image"] = servers[server]["user_options"]["image"]

        browser.get(f"{WEB}/home/")
        assert browser.find_element(By.ID, "signed-in-user").text == ALICE
        row = browser.find_element(By.CSS_SELECTOR, f'li[data-server="{server}"]')
        assert row.find_element(By.CLASS_NAME, "open-server").get_attribute("href").endswith(f"/user/{ALICE}/{server}/")

        # Over servers_per_user (1): another repository, allowed by the default, gets BinderHub's quota words.
        other = f"{WEB}/build/{git_server.link('bltest-open-notes')}"
        cookies = web_session(browser)
        with requests.get(other, headers=STREAM_HEADERS, cookies=cookies, stream=True, timeout=(5, 60)) as response:
            assert response.status_code == 200, response.text
            events, _ = read_events(response)
        assert events[-1]["phase"] == "failed"
        assert f"User {ALICE} already has the maximum of 1 named servers" in events[-1]["message"]

        browser.get(f"{WEB}/home/")
        browser.find_element(By.CSS_SELECTOR, f'li[data-server="{server}"] .stop-server').click()
        WebDriverWait(browser, 60).until(lambda b: not department["hub"].user(ALICE)["servers"])
    finally:
        browser.quit()


def test_a_user_in_no_allowed_group_gets_403_for_the_built_image(department, git_server, docker_client):
    assert docker_client.images.get(department["image"]), "Alice's launch built the image"
    browser = chromium()
    try:
        password = department["passwords"][BOB]
        check_refused(browser, git_server.link("bltest-physics-intro"), BOB, password, "physics-teaching", CONTACT)
    finally:
        browser.quit()
    assert department["hub"].user(BOB)["servers"] == {}


def test_a_users_own_hub_token_cannot_start_a_server_with_options_of_their_own(department):
    hub = department["hub"]
    token = hub.check(hub.call("POST", f"/users/{ALICE}/tokens", json={"note": "bltest"}), "Minting").json()["token"]
    options = {"image": "bltest-any", "limits": {"memory_limit": "100G"}}
    response = requests.post(
        f"{hub.api}/users/{quote(ALICE)}/servers/mine",
        json=options,
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert response.status_code == 403, response.text


def test_a_malformed_access_rule_stops_the_cli_with_its_name(department):
    env = appliance_env(
        department["up"]["state"], {**EXTRA, "BINDERLITE_ACCESS_RULES": '[{"name": "x", "pattern": "("}]'}
    )
    out = subprocess.run([*binderlite_cli(), "status"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "access rule 1 ('x') has a pattern that is not a valid regular expression" in out.stderr
    assert "Traceback" not in out.stderr
