"""Signing in to a real hub as a person does: its login form in headless Chromium, and the hub's API.

``sign_in`` fills in and submits ``/hub/login``.
"""

from __future__ import annotations

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from binderlite.hub import addresses as hub
from binderlite.settings import Settings


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
