"""Signing in to the real hub against a real directory (slapd), in headless Chromium, and what a user may then do.

Two people in two groups sign in through the hub's own login form; their hub
groups are their directory groups. A signed-in user's own credentials (the
browser's cookie, a token of theirs) cannot start, stop or change a server
through the hub: only binderlite's service can. A directory that does not
answer stops the hub (and ``binderlite up``) with one message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import requests
from selenium.webdriver.common.by import By

from binderlite.settings import Settings
from tests.helpers.browser import appliance_env, chromium
from tests.helpers.ldapserver import running_directory
from tests.helpers.net import free_port
from tests.helpers.signin import public, service_api, sign_in
from tests.helpers.stack import binderlite_cli, core_stack, service_state_dir
from tests.integration.conftest import HUB_NETWORKS, HUB_PORTS, HUB_REGISTRY

pytestmark = pytest.mark.integration

PEOPLE = {"alice": "alice-Pw-1", "bob": "bob-Pw-2"}
GROUPS = {"physics": ["alice"], "chemistry": ["bob"]}


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    with running_directory(tmp_path_factory.mktemp("slapd"), PEOPLE, GROUPS) as found:
        yield found


def ldap_settings(state_dir: str, directory) -> Settings:
    return Settings(
        state_dir=state_dir,
        registry=HUB_REGISTRY,
        auth_mode="authenticated",
        authenticator="ldap",
        ldap_url=directory.url,
        ldap_starttls=False,  # a directory on this machine, as the setting's help allows
        ldap_bind_dn_template=directory.bind_dn_template,
        ldap_group_search_base=directory.group_base,
        ldap_allowed_groups="physics,chemistry",
        **HUB_PORTS,
        **HUB_NETWORKS,
    )


@pytest.fixture(scope="module")
def ldapstack(directory, docker_client):
    """Registry + proxy + hub signing people in against ``directory``."""
    with core_stack(lambda state: ldap_settings(state, directory), docker_client, "bltest-ldap-") as settings:
        yield settings


@pytest.fixture
def browser():
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def test_both_people_sign_in_through_the_login_form_and_their_groups_are_hub_groups(ldapstack, browser):
    for name, group in (("alice", "physics"), ("bob", "chemistry")):
        browser.delete_all_cookies()
        sign_in(browser, ldapstack, name, PEOPLE[name])
        assert browser.current_url.endswith("/hub/home"), browser.current_url
        assert name in browser.find_element(By.TAG_NAME, "body").text
        user = service_api(ldapstack, "GET", f"/users/{name}").json()
        assert user["groups"] == [group]
        assert user["admin"] is False


def test_a_wrong_password_or_a_stranger_stays_signed_out(ldapstack, browser):
    for name, password in (("alice", "not-her-password"), ("mallory", "anything")):
        browser.delete_all_cookies()
        sign_in(browser, ldapstack, name, password)
        assert "/hub/login" in browser.current_url
        assert "Invalid username or password" in browser.find_element(By.CLASS_NAME, "login_error").text
    assert service_api(ldapstack, "GET", "/users/mallory").status_code == 404


def test_a_signed_in_users_own_credentials_cannot_start_stop_or_change_servers(ldapstack, browser):
    sign_in(browser, ldapstack, "alice", PEOPLE["alice"])
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    as_browser = requests.Session()
    as_browser.cookies.update(cookies)
    as_browser.headers["X-XSRFToken"] = cookies.get("_xsrf", "")
    minted = service_api(ldapstack, "POST", "/users/alice/tokens", json={"note": "alice's own"})
    assert minted.status_code == 201, minted.text
    as_token = requests.Session()
    as_token.headers["Authorization"] = f"token {minted.json()['token']}"
    api = public(ldapstack) + "/hub/api"
    options = {"image": "bltest-not-binderlites:latest", "mem_limit": "64G"}
    for who, session in (("cookie", as_browser), ("token", as_token)):
        me = session.get(f"{api}/user", timeout=10)
        assert me.status_code == 200 and me.json()["name"] == "alice", (who, me.text)
        attempts = {
            "start": session.post(f"{api}/users/alice/server", json=options, timeout=10),
            "start named": session.post(f"{api}/users/alice/servers/mine", json=options, timeout=10),
            "stop": session.delete(f"{api}/users/alice/server", timeout=10),
            "stop named": session.delete(f"{api}/users/alice/servers/mine", timeout=10),
            "new token": session.post(f"{api}/users/alice/tokens", json={}, timeout=10),
        }
        if who == "cookie":  # the hub's own spawn page (its form starts a server with the options posted)
            page = session.get(f"{public(ldapstack)}/hub/spawn/alice/mine", allow_redirects=False, timeout=10)
            attempts["spawn page"] = page
        allowed = {what: r.status_code for what, r in attempts.items() if r.status_code != 403}
        assert not allowed, f"alice's {who} was allowed: {allowed}"
        for what, r in attempts.items():  # refused for want of a scope (not, say, for a missing XSRF token)
            assert "not authorized with current scopes" in r.text or "no permissions" in r.text, (who, what, r.text)
        assert "requires any of [start:servers]" in attempts["start named"].json()["message"]
        assert session.get(f"{api}/users/bob", timeout=10).status_code in (403, 404), "alice reads bob"
    assert service_api(ldapstack, "GET", "/users/alice").json()["servers"] == {}
    # binderlite's own service may: it holds the servers scope the user role lacks
    assert "servers" in service_api(ldapstack, "GET", "/user").json()["scopes"]


def test_an_unreachable_directory_stops_the_hub_with_one_message(directory, docker_client):
    state_dir = service_state_dir("bltest-ldap-down-")
    try:
        settings = ldap_settings(str(state_dir), directory).with_overrides(ldap_url=f"ldap://127.0.0.1:{free_port()}")
        env = {**os.environ, **settings.to_environment()}
        hub_run = subprocess.run(
            [sys.executable, "-m", "binderlite.hub"], env=env, capture_output=True, text=True, timeout=120
        )
        assert hub_run.returncode == 4, hub_run.stderr[-3000:]
        assert f"{settings.ldap_url} does not answer" in hub_run.stderr
        assert "Traceback" not in hub_run.stderr
        status = subprocess.run([*binderlite_cli(), "status"], env=env, capture_output=True, text=True, timeout=120)
        assert f"sign-in (ldap): The LDAP directory at {settings.ldap_url} does not answer" in status.stdout
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def test_binderlite_up_refuses_to_start_anything_when_the_directory_does_not_answer(directory):
    state_dir = service_state_dir("bltest-ldap-up-")
    try:
        env = appliance_env(state_dir)
        env.update(
            BINDERLITE_AUTH_MODE="authenticated",
            BINDERLITE_AUTHENTICATOR="ldap",
            BINDERLITE_LDAP_URL=f"ldap://127.0.0.1:{free_port()}",
            BINDERLITE_LDAP_BIND_DN_TEMPLATE=directory.bind_dn_template,
        )
        up = subprocess.run([*binderlite_cli(), "up"], env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 4, up.stdout[-2000:] + up.stderr[-2000:]
        assert "Error: The LDAP directory at" in up.stderr and "does not answer" in up.stderr
        assert "Traceback" not in up.stderr
        assert not list((state_dir / "run").glob("*.pid")), "a service was started"
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
