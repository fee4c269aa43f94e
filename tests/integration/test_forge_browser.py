"""Signing in through a git forge, and the forge's word on every launch: an image built for one user is no way in.

A real forge on 127.0.0.1 (``tests/helpers/forge.py``: an OpenID Connect provider
that is GitLab-shaped and serves git, checking tokens) holds the private project
``physics/notebook``; alice is a member, bob is not. binderlite runs in
authenticated mode with ``authenticator = "gitlab"`` at that forge, and holds the
forge's deploy credential in its secrets file, so it can build the project.

Both users sign in through the forge's login form in headless Chromium. Alice
opens the link: the project is built and she lands in JupyterLab. Bob opens the
same link: the image exists already, but the forge says bob's own token cannot
read the project, so he gets a 403 page, no server and no build; the build API
gives him a 403 too. Once alice leaves the project, her next launch is refused
as well. No token of either user (nor binderlite's secrets) appears in a page
or in a file of the appliance's state.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from binderlite.hub import addresses
from binderlite.hub.api import HubClient
from binderlite.settings import load_settings
from tests.helpers.browser import WEB, appliance_env, chromium
from tests.helpers.containers import remove_stack_containers
from tests.helpers.diagnostics import watching
from tests.helpers.forge import Forge
from tests.helpers.net import wait_for_http
from tests.helpers.stack import binderlite_cli, service_state_dir, stop_process
from tests.helpers.streams import STREAM_HEADERS, read_events

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (importlib.util.find_spec("binderlite.hub.auth") and importlib.util.find_spec("binderlite.access.rules")),
        reason="needs the hub's sign-in (binderlite.hub.auth) and the web app's (binderlite.access.rules)",
    ),
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PROJECT = "physics/notebook"
CLIENT_ID = "binderlite-hub"
SESSION_COOKIE = "binderlite-session"
PASSWORDS = {"alice": "alice-forge-password", "bob": "bob-forge-password"}


@pytest.fixture(scope="module")
def forge(tmp_path_factory) -> Iterator[Forge]:
    forge = Forge(tmp_path_factory.mktemp("forge"))
    forge.add_user("alice", PASSWORDS["alice"], ("physics",))
    forge.add_user("bob", PASSWORDS["bob"], ("chemistry",))
    forge.add_project(PROJECT, "requirements", {"alice"})
    yield forge
    forge.close()


@contextlib.contextmanager
def signed_in_appliance(docker_client, forge: Forge) -> Iterator[dict]:
    """`binderlite up` in authenticated mode, signing users in through ``forge``; removed afterwards."""
    state = service_state_dir("bltest-forge-")
    (state / "logs").mkdir(exist_ok=True)
    secrets_dir = Path(tempfile.mkdtemp(prefix="bltest-forge-secrets-"))  # outside the state dir, scanned below
    client_secret = "forge-client-secret-" + os.urandom(8).hex()
    credentials = secrets_dir / "credentials.toml"
    credentials.write_text(
        f'[auth]\noauth_client_secret = "{client_secret}"\n\n'
        f'[[git]]\nhost = "{forge.host}"\nusername = "{forge.deploy[0]}"\ntoken = "{forge.deploy[1]}"\n'
    )
    credentials.chmod(0o600)
    env = appliance_env(state)
    env.update(
        BINDERLITE_IMAGE_PREFIX="bltest-forge-",
        BINDERLITE_AUTH_MODE="authenticated",
        BINDERLITE_AUTHENTICATOR="gitlab",
        BINDERLITE_OAUTH_URL=forge.url,
        BINDERLITE_OAUTH_CLIENT_ID=CLIENT_ID,
        BINDERLITE_CREDENTIALS_FILE=str(credentials),
        BINDERLITE_ACCESS_DEFAULT="allow",  # no rule refuses: only the forge's word does
    )
    settings = load_settings(environ=env)
    forge.add_client(CLIENT_ID, client_secret, addresses.public_url(settings) + "hub/oauth_callback")
    up_log = state / "logs" / "up.log"
    log = open(up_log, "wb")
    proc = subprocess.Popen([*binderlite_cli(), "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_http(f"{WEB}/health", timeout=180, process=proc, interval=1):
            pytest.fail("binderlite up did not become healthy:\n" + up_log.read_text()[-4000:])
        with watching(state):
            yield {"state": state, "settings": settings, "env": env, "secret": client_secret}
    finally:
        stop_process(proc, timeout=90)
        remove_stack_containers(docker_client, settings)
        log.close()
        print(up_log.read_text()[-3000:])
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(secrets_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def appliance(docker_client, forge) -> Iterator[dict]:
    with signed_in_appliance(docker_client, forge) as up:
        yield up


def open_signed_in(browser, forge: Forge, link: str, username: str) -> None:
    """Open ``link`` signed out: the web app, the hub and the forge's login form, then back to ``link``."""
    browser.get(link)
    WebDriverWait(browser, 60).until(lambda b: b.current_url.startswith(f"{forge.url}/oauth/authorize"))
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORDS[username])
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 60).until(lambda b: not b.current_url.startswith(forge.url))


def images_built(state: Path) -> list[str]:
    with sqlite3.connect(state / "binderlite.sqlite") as db:
        return [image for (image,) in db.execute("SELECT image FROM builds")]


def issued_tokens(forge: Forge, username: str) -> list[str]:
    return [token for token, user in forge.tokens.items() if user.username == username]


def test_a_member_launches_and_someone_else_gets_403_for_the_same_built_image(appliance, forge, docker_client):
    ARTIFACTS.mkdir(exist_ok=True)
    state, settings = appliance["state"], appliance["settings"]
    link = f"{WEB}/v2/{forge.link(PROJECT)}"

    alice = chromium()
    try:
        open_signed_in(alice, forge, link, "alice")
        WebDriverWait(alice, 600).until(lambda b: "/user/alice/" in b.current_url)
        WebDriverWait(alice, 120).until(lambda b: "index.ipynb" in b.page_source and "JupyterLab" in b.title)
        time.sleep(2)
        alice.save_screenshot(str(ARTIFACTS / "forge-alice-jupyterlab.png"))
    except BaseException:
        alice.quit()
        raise
    built = images_built(state)
    assert len(built) == 1, built
    docker_client.images.get(built[0])  # the private project's image is on the daemon
    servers = (HubClient(settings).user("alice") or {}).get("servers") or {}
    assert any(s.get("ready") for s in servers.values()), servers

    bob = chromium()
    try:
        open_signed_in(bob, forge, link, "bob")
        WebDriverWait(bob, 120).until(lambda b: "cannot read" in b.page_source)
        bob.save_screenshot(str(ARTIFACTS / "forge-bob-refused.png"))
        assert "/user/" not in bob.current_url
        page = bob.find_element(By.TAG_NAME, "body").text
        assert "bob" in page and PROJECT in page, page
        cookie = next(c["value"] for c in bob.get_cookies() if c["name"] == SESSION_COOKIE)
        for token in issued_tokens(forge, "bob") + issued_tokens(forge, "alice"):
            assert token not in bob.page_source
    finally:
        bob.quit()

    # the build API, with bob's session: refused before anything is built or started
    with requests.get(
        f"{WEB}/build/{forge.link(PROJECT)}",
        headers=STREAM_HEADERS,
        cookies={SESSION_COOKIE: cookie},
        stream=True,
        timeout=(5, 60),
    ) as answer:
        if answer.status_code == 200:
            events, _ = read_events(answer, deadline=120)
            assert events[-1]["phase"] == "failed" and events[-1].get("status_code") == 403, events
            assert not any(e.get("phase") in ("building", "launching", "ready") for e in events), events
        else:
            assert answer.status_code == 403, answer.text[:2000]
    assert images_built(state) == built  # no second build for bob
    assert not ((HubClient(settings).user("bob") or {}).get("servers") or {})

    # asked again on every launch: once alice leaves the project, her next launch is refused too
    forge.projects[PROJECT].members.discard("alice")
    try:
        alice.get(link)
        WebDriverWait(alice, 120).until(lambda b: "cannot read" in b.page_source)
        assert "/user/" not in alice.current_url
    finally:
        forge.projects[PROJECT].members.add("alice")
        alice.quit()

    # neither user's forge token, nor a secret of binderlite's, is in a file of the appliance's state
    # (logs, build logs, both databases: the hub keeps the forge token encrypted)
    secrets = issued_tokens(forge, "alice") + issued_tokens(forge, "bob") + [appliance["secret"], forge.deploy[1]]
    assert issued_tokens(forge, "alice") and issued_tokens(forge, "bob")
    hits = []
    for path in state.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 20_000_000:
            data = path.read_bytes()
            hits += [path for s in secrets if s.encode() in data]
    assert hits == [], f"a secret is in {sorted(set(map(str, hits)))}"
