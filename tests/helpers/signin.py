"""Signing in to a real hub as a person does: its login form in headless Chromium, and the hub's API.

``sign_in`` fills in and submits ``/hub/login``;
``sign_in_on_hub_form`` does so where a link opened signed out led, and ``web_session`` is then the web
app's cookie (``running_appliance``); ``launch_signed_out`` and ``check_refused`` are the two ends of an
access rule as a person meets them.
"""

from __future__ import annotations

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from binderlite.hub import addresses as hub
from binderlite.settings import Settings
from tests.helpers.browser import WEB
from tests.helpers.streams import STREAM_HEADERS

SESSION_COOKIE = "binderlite-session"


def public(settings: Settings) -> str:
    """Where users reach the hub (through the proxy), without a trailing slash."""
    return hub.public_url(settings).rstrip("/")


def sign_in(browser, settings: Settings, name: str, password: str) -> None:
    """Type ``name`` and ``password`` into the hub's login form and submit it; wait for the answer."""
    browser.get(public(settings) + "/hub/login")
    browser.find_element(By.ID, "username_input").send_keys(name)
    browser.find_element(By.ID, "password_input").send_keys(password)
    browser.find_element(By.ID, "login_submit").click()
    WebDriverWait(browser, 30).until(
        lambda b: "/hub/login" not in b.current_url or b.find_elements(By.CLASS_NAME, "login_error")
    )


def service_api(settings: Settings, method: str, path: str, **kwargs) -> requests.Response:
    """A call to the hub's REST API with binderlite's own service token."""
    headers = {"Authorization": f"token {hub.hub_api_token(settings)}"}
    return requests.request(method, f"{public(settings)}/hub/api{path}", headers=headers, timeout=30, **kwargs)


def sign_in_on_hub_form(browser, user: str, password: str) -> None:
    """Wait for the hub's login form (where a link opened signed out leads), fill it in and submit it."""
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "username_input"))
    assert "/hub/login" in browser.current_url
    browser.find_element(By.ID, "username_input").send_keys(user)
    browser.find_element(By.ID, "password_input").send_keys(password)
    browser.find_element(By.ID, "login_submit").click()


def web_session(browser) -> dict[str, str]:
    """The signed-in browser's cookie for the web app (``running_appliance``), for requests of its own."""
    browser.get(f"{WEB}/home/")
    return {SESSION_COOKIE: next(c["value"] for c in browser.get_cookies() if c["name"] == SESSION_COOKIE)}


def launch_signed_out(browser, link: str, user: str, password: str, server: str) -> None:
    """Open ``link`` (a ``/v2/`` launch) signed out, sign in on the hub's form: back to it, then in JupyterLab."""
    browser.get(link)
    sign_in_on_hub_form(browser, user, password)
    WebDriverWait(browser, 60).until(lambda b: b.current_url.startswith(f"{WEB}/v2/"))
    assert browser.current_url == link, "back to the link first opened"
    WebDriverWait(browser, 600).until(lambda b: f"/user/{user}/{server}/" in b.current_url)
    WebDriverWait(browser, 120).until(lambda b: "JupyterLab" in b.title)


def check_refused(browser, spec: str, user: str, password: str, rule: str, contact: str) -> None:
    """``user`` opens ``/v2/<spec>`` signed out, signs in: the 403 page names ``rule`` and ``contact``;
    the build API with the same session answers 403 for ``rule`` (the caller checks nothing started)."""
    browser.get(f"{WEB}/v2/{spec}")
    sign_in_on_hub_form(browser, user, password)
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.ID, "refused-page"))
    assert browser.find_element(By.ID, "refusing-rule").text == rule
    assert browser.find_element(By.ID, "contact").text == contact
    api = requests.get(f"{WEB}/build/{spec}", headers=STREAM_HEADERS, cookies=web_session(browser), timeout=30)
    assert api.status_code == 403 and api.json()["rule"] == rule, api.text
