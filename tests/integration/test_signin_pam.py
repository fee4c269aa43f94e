"""PAM, the default sign-in of a lab server: a local account signs in through the hub's login form in Chromium.

The test makes two local accounts (``bltest-pam-*``, one in a local group the
settings allow) and removes them afterwards; the hub checks their passwords
against /etc/shadow through PAM, as it does under ``binderlite up`` and systemd.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from binderlite.settings import Settings
from tests.helpers.browser import chromium
from tests.helpers.signin import service_api, sign_in
from tests.helpers.stack import core_stack
from tests.integration.conftest import HUB_NETWORKS, HUB_PORTS, HUB_REGISTRY

pytestmark = pytest.mark.integration

GROUP = "bltest-pam-lab"
MEMBER, OUTSIDER = "bltest-pam-ann", "bltest-pam-ben"
PASSWORD = "Lab-Pw-314"


@pytest.fixture(scope="module")
def local_accounts():
    if os.geteuid() != 0:
        pytest.skip("making local accounts needs root")
    subprocess.run(["groupadd", GROUP], check=True)
    try:
        for name, groups in ((MEMBER, [GROUP]), (OUTSIDER, [])):
            extra = ["-G", ",".join(groups)] if groups else []
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", *extra, name], check=True)
            subprocess.run(["chpasswd"], input=f"{name}:{PASSWORD}\n", text=True, check=True)
        yield
    finally:
        for name in (MEMBER, OUTSIDER):
            subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", GROUP], capture_output=True)


@pytest.fixture(scope="module")
def pamstack(local_accounts, docker_client):
    def settings_in(state: str) -> Settings:
        return Settings(
            state_dir=state,
            registry=HUB_REGISTRY,
            auth_mode="authenticated",
            pam_allowed_groups=GROUP,
            **HUB_PORTS,
            **HUB_NETWORKS,
        )

    with core_stack(settings_in, docker_client, "bltest-pam-") as settings:
        yield settings


def test_a_local_account_in_the_allowed_group_signs_in_and_the_others_do_not(pamstack):
    browser = chromium()
    try:
        sign_in(browser, pamstack, MEMBER, PASSWORD)
        assert browser.current_url.endswith("/hub/home"), browser.current_url
        assert GROUP in service_api(pamstack, "GET", f"/users/{MEMBER}").json()["groups"]
        for name, password in ((OUTSIDER, PASSWORD), (MEMBER, "not-the-password")):
            browser.delete_all_cookies()
            sign_in(browser, pamstack, name, password)
            assert "/hub/login" in browser.current_url, (name, browser.current_url)
    finally:
        browser.quit()
    assert service_api(pamstack, "GET", f"/users/{OUTSIDER}").status_code == 404
