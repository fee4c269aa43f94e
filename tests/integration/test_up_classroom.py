"""`binderlite up --classroom`: attendees get the URL and its QR code, and launch on the room's address.

The room's address here is 127.0.0.2, a loopback address (test traffic never
goes to the host's network). Chromium opens the landing page there; the QR
code in its screenshot, read by `zbarimg`, is the URL. A launch through that
address ends on a server reached through the proxy on the same address.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from binderlite.workshop.manifest import Manifest
from tests.helpers.browser import PORTS, appliance_env, chromium, running_appliance
from tests.helpers.kernel import run_code
from tests.helpers.stack import binderlite_cli
from tests.helpers.streams import final_event, stream_events

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ROOM = "127.0.0.2"
ROOM_URL = f"http://{ROOM}:{PORTS['WEB_PORT']}/"
ROOM_SETTINGS = {
    "BINDERLITE_CLASSROOM_ADDRESS": ROOM,
    "BINDERLITE_OFFLINE": "no",  # the manifest below only carries the attendees
    "BINDERLITE_WARM_POOL_SIZE": "0",
    "BINDERLITE_MEMORY_LIMIT": "2G",
}
ATTENDEES = 40  # at 2G each, more than this machine holds: up warns


@pytest.fixture(scope="module")
def room(git_server, docker_client):
    manifest = {"workshop/manifest.json": Manifest(attendees=ATTENDEES).to_json()}
    with running_appliance(
        docker_client, extra=ROOM_SETTINGS, args=("--classroom",), web=ROOM_URL.rstrip("/"), files=manifest
    ) as up:
        yield up


def up_output(room, timeout: float = 120) -> str:
    """What `up` printed, once it has said it is up (the web app answers before the scheduler has started)."""
    deadline = time.monotonic() + timeout
    while True:
        text = (room["state"] / "logs" / "up.log").read_text(errors="replace")
        if "No expected attendees" in text or "Sized for" in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_up_prints_the_url_the_qr_code_and_the_rooms_size(room):
    out = up_output(room)
    assert f"binderlite is up: {ROOM_URL}" in out
    assert f"Classroom: attendees open {ROOM_URL}" in out
    assert "▀" in out or "█" in out, "a QR code drawn in the terminal"
    assert f"Sized for {ATTENDEES} attendees and 0 warm servers: total_quota 64, launch_rate_limit 120" in out
    assert f"Warning: {ATTENDEES} servers at memory_limit 2G need up to 80.0 GiB" in out


def test_status_shows_the_room_and_the_memory_warning(room):
    out = subprocess.run(
        [*binderlite_cli(), "status"],
        env=appliance_env(room["state"], ROOM_SETTINGS),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"classroom   {ROOM_URL} ({ATTENDEES} attendees, 0 warm; total_quota 64)" in out.stdout, out.stdout
    assert f"  warning: {ATTENDEES} servers at memory_limit 2G" in out.stdout


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (zbar-tools) is not installed")
def test_the_landing_page_shows_the_url_and_a_qr_code_that_decodes_to_it(room):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "classroom-landing.png"
    browser = chromium(also=(ROOM,))
    try:
        browser.get(ROOM_URL)
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#classroom-qr svg"))
        assert browser.find_element(By.ID, "classroom-url").text == ROOM_URL
        time.sleep(0.5)
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(shot)], capture_output=True, text=True, timeout=60)
    assert decoded.stdout.strip() == ROOM_URL, decoded.stderr


def test_a_launch_through_the_rooms_address_ends_on_its_proxy(room, git_server):
    git_server.add_fixture("requirements", "classroom")
    ready = final_event(stream_events(f"{ROOM_URL}build/{git_server.link('classroom')}"))
    assert ready["phase"] == "ready", ready
    assert ready["url"].startswith(f"http://{ROOM}:{PORTS['PROXY_PORT']}/user/")
    assert run_code(ready["url"], ready["token"], "1+1") == "2"
