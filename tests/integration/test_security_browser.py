"""In a real browser, a launch link's urlpath/labpath cannot move the server's token off the server.

One real launch through `binderlite up` gives a running server and its ``ready``
event. Each case then opens the real launch page (from the appliance, with its
headers) in headless Chromium whose ``EventSource`` replays that event, so the
page's own redirect logic runs against the real server without a launch per
case; one more case is a whole launch, hostile ``urlpath`` and all. Chromium
resolves no host but 127.0.0.1, so a page that tries to go elsewhere fails
there; its network log shows where it tried. For every case: no alert opened,
no request left 127.0.0.1, the token went only to URLs under the server's own
origin and path, the browser ends inside the server, and a refused target was
explained on the page.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
import requests
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    UnexpectedAlertPresentException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.browser import WEB, chromium, running_appliance

pytestmark = pytest.mark.integration
PROXY = "http://127.0.0.1:18840/"
# query string → where the browser must end inside the server (None: refused, the server's start page)
CASES = {
    "benign-urlpath": ("urlpath=lab/tree/index.ipynb", "lab/tree/index.ipynb"),
    "benign-labpath": ("labpath=index.ipynb", "doc/tree/index.ipynb"),
    "other-origin": ("urlpath=https://example.invalid/x", None),
    "scheme-relative": ("urlpath=//example.invalid/x", None),
    "slash-backslash": ("urlpath=/%5Cexample.invalid", None),
    "javascript": ("urlpath=javascript:alert(1)", None),
    "javascript-comment": ("urlpath=javascript:alert(document.domain)//", None),
    "data": ("urlpath=data:text/html,%3Cscript%3Ealert(1)%3C/script%3E", None),
    "encoded-dots": ("urlpath=..%2f..%2fuser%2fother", None),
    "double-encoded-dots": ("urlpath=%252e%252e%252f%252e%252e%252fuser%252fother", None),
    "labpath-up": ("labpath=../../user/other/", None),
    "labpath-far-up": ("labpath=../../../../user/other/", None),
}


@pytest.fixture(scope="module")
def appliance(docker_client):
    with running_appliance(docker_client) as up:
        yield up


@pytest.fixture(scope="module")
def link(appliance, git_server) -> str:
    git_server.add_fixture("requirements", "security-browser")
    return git_server.link("security-browser")


@pytest.fixture(scope="module")
def ready(link) -> dict:
    """The ``ready`` event of one real launch (built, then started through the hub)."""
    with requests.get(f"{WEB}/build/{link}", headers={"Accept": "text/event-stream"}, stream=True, timeout=600) as resp:
        for line in resp.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[len("data:") :])
                if event.get("phase") in ("ready", "failed"):
                    assert event["phase"] == "ready", event
                    assert event["url"].startswith(PROXY + "user/")
                    return event
    pytest.fail("the build stream ended without ready")


@pytest.fixture(scope="module")
def replaying_browser(ready):
    """Chromium whose launch pages get ``ready`` at once instead of opening the build stream."""
    browser = chromium()
    replay = (
        f"if (location.origin === {json.dumps(WEB)}) {{ window.EventSource = class {{"
        f" constructor() {{ setTimeout(() => this.onmessage({{data: {json.dumps(json.dumps(ready))}}}), 0); }}"
        " close() {} }; }"
    )
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": replay})
    yield browser
    browser.quit()


def follow(browser, until, timeout: float = 20) -> dict:
    """Watch the launch page until ``until(url)`` holds or time runs out; what happened on the way."""
    seen = {"alert": None, "notice": "", "url": ""}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            alert = browser.switch_to.alert
            seen["alert"] = alert.text
            alert.dismiss()
            break
        except NoAlertPresentException:
            pass
        try:
            seen["url"] = browser.current_url
            if seen["url"].startswith(WEB):
                notice = browser.find_elements(By.CSS_SELECTOR, "#refused:not([hidden])")
                seen["notice"] = notice[0].text if notice else seen["notice"]
            elif until(seen["url"]):
                break
        except (UnexpectedAlertPresentException, StaleElementReferenceException):
            continue  # an alert opened, or the page went away, while looking
        time.sleep(0.1)
    return seen


def requested(browser) -> list[str]:
    """Every URL the browser asked for since the last call (its network log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def csp_violations(browser) -> list[str]:
    """Console messages of binderlite's own pages about something their CSP blocked."""
    return [m for e in browser.get_log("browser") if (m := e["message"]).startswith(WEB) and "Content Security" in m]


def check_stays_on_server(browser, page: str, server: str, token: str, expected: str | None) -> dict:
    """Open ``page``; assert everything this module promises; return what was seen."""
    requested(browser)  # start both logs afresh
    csp_violations(browser)
    browser.get(page)
    target = server + (expected or "")
    seen = follow(browser, lambda url: url.startswith(target))
    urls = requested(browser)
    assert seen["alert"] is None, f"an alert opened: {seen['alert']!r}"
    assert [u for u in urls if urlsplit(u).hostname not in (None, "127.0.0.1")] == []
    assert [u for u in urls if token in u and not u.startswith(server)] == [], "the token left the server"
    assert seen["url"].startswith(target), f"ended on {seen['url']}, not inside {target}"
    assert csp_violations(browser) == []
    if expected is None:
        assert "not a page inside your server" in seen["notice"], seen
    return seen


@pytest.mark.parametrize("query, expected", list(CASES.values()), ids=list(CASES))
def test_launch_page_keeps_the_token_on_the_server(replaying_browser, link, ready, query, expected):
    check_stays_on_server(replaying_browser, f"{WEB}/v2/{link}?{query}", ready["url"], ready["token"], expected)


def test_a_whole_launch_with_a_hostile_urlpath_opens_the_server(link):
    browser = chromium()
    try:
        requested(browser)
        browser.get(f"{WEB}/v2/{link}?urlpath=https://example.invalid/x")
        shown = "#refused:not([hidden]), #failure:not([hidden])"
        WebDriverWait(browser, 180).until(lambda b: b.find_elements(By.CSS_SELECTOR, shown))
        assert not browser.find_elements(By.CSS_SELECTOR, "#failure:not([hidden])")
        seen = follow(browser, lambda url: url.startswith(PROXY + "user/"))
        urls = requested(browser)
        assert seen["url"].startswith(PROXY + "user/"), seen
        server = PROXY + "/".join(urlsplit(seen["url"]).path.split("/")[1:3]) + "/"
        assert [u for u in urls if "token=" in u and not u.startswith(server)] == []
        assert [u for u in urls if urlsplit(u).hostname not in (None, "127.0.0.1")] == []
    finally:
        browser.quit()


def test_pages_work_under_their_content_security_policy():
    browser = chromium()
    try:
        browser.get(WEB + "/")
        browser.find_element(By.ID, "repository").send_keys("org/repo")
        WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "share").is_displayed())
        assert browser.find_element(By.ID, "share-url").get_attribute("value") == f"{WEB}/v2/gh/org/repo/HEAD"
        assert browser.execute_script("return getComputedStyle(document.body).margin") == "0px"  # the stylesheet
        assert csp_violations(browser) == []
        response = requests.get(f"{WEB}/v2/gh/org/repo/HEAD", timeout=10)
        assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        browser.quit()
