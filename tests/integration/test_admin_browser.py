"""The admin page in headless Chromium against the real web app (gunicorn), hub, proxy and Docker.

One server is launched on the module's hub stack from the session's built
image. The page, opened from 127.0.0.1, lists that server (with the memory
its container uses) and the image; deleting the image while the server uses it is
refused with the reason; stopping the server from the page removes its
container and the hub forgets its user. Through a reverse proxy
(``X-Forwarded-For``) the page is 403 until the admin token is typed into its
form; a POST without the CSRF token is refused. Who is an admin when users
sign in is asked of a second, real hub in authenticated mode (no registry, no
server: one user its admin_users names, one not) through the app's test
client, with the session cookie a browser would carry. A real build stopped
from the page ends with its worker and repo2docker, and "rebuild" queues the
same repository and commit again.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from binderlite.builds.pipeline import build_events
from binderlite.builds.queue import BuildQueue, pid_alive
from binderlite.hub.api import HubClient
from binderlite.links import resolve_link
from binderlite.settings import Settings
from binderlite.web import signin
from binderlite.web.app import create_app
from tests.helpers.browser import chromium
from tests.helpers.containers import TEST_PREFIX, stack_label
from tests.helpers.localusers import local_users
from tests.helpers.signin import service_api
from tests.helpers.stack import core_stack, launch_ready, user_of
from tests.helpers.webapp import gunicorn_web
from tests.integration.conftest import HUB_NETWORKS

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "bltest-admin-token-7f3a9c"
# Where the run's screenshot goes; docs/images/admin-page.png (the README's) is a copy of one.
SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin-page.png"
ADMIN, NOT_ADMIN = "bltest-admin-yes", "bltest-admin-no"
AUTH_PORTS = {"proxy_port": 18742, "proxy_api_port": 18743, "hub_port": 18782}  # beside the module's hub stack
PROXIED = {"X-Forwarded-For": "203.0.113.7"}  # what the lab server's Caddy adds, connecting from 127.0.0.1


@pytest.fixture(scope="module")
def web(hubstack, settings, tmp_path_factory):
    """The web app of the hub stack, seeing the session's built images as its own (prefix, registry)."""
    environment = {
        **hubstack.to_environment(),
        "BINDERLITE_IMAGE_PREFIX": TEST_PREFIX,
        "BINDERLITE_REGISTRY": settings.registry,
        "BINDERLITE_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with gunicorn_web(environment, tmp_path_factory.mktemp("admin") / "web.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    driver.set_window_size(1280, 1000)
    yield driver
    driver.quit()


def row(browser, attribute: str, value: str):
    found = [
        r for r in browser.find_elements(By.CSS_SELECTOR, f"tr[{attribute}]") if r.get_attribute(attribute) == value
    ]
    assert found, f"no row with {attribute}={value!r} on the page:\n{browser.find_element(By.TAG_NAME, 'main').text}"
    return found[0]


def flash(browser) -> str:
    return " ".join(e.text for e in browser.find_elements(By.CLASS_NAME, "flash"))


def test_the_page_lists_a_server_and_its_image_refuses_deleting_it_and_stops_the_server(
    web, browser, hubstack, launch_image, docker_client
):
    started = time.monotonic()
    user = user_of(launch_ready(hubstack, launch_image, name="bltest/admin"))
    BuildQueue(hubstack).touch_image(launch_image)  # what the pipeline records when a link asks for it
    image_id = docker_client.images.get(launch_image).id

    browser.get(f"{web}/admin/")
    server_row = row(browser, "data-user", user)
    assert "127.0.0.1:9/bltest/admin.git" in server_row.text
    assert re.search(r"\d+(\.\d)? (MiB|KiB)", server_row.text), server_row.text  # memory, from Docker
    image_row = row(browser, "data-image", image_id)
    assert launch_image in image_row.text and "1 container" in image_row.text and "ago" in image_row.text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size < 300 * 1024

    image_row.find_element(By.CLASS_NAME, "delete-image").click()
    assert "is in use by 1 container(s)" in flash(browser) and "stop them first" in flash(browser)
    assert docker_client.images.get(launch_image).id == image_id

    row(browser, "data-user", user).find_element(By.CLASS_NAME, "stop-server").click()
    assert f"Stopped the server {user}." in flash(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-user="{user}"]')
    deadline = time.monotonic() + 30
    while docker_client.containers.list(
        all=True, filters={"label": [stack_label(hubstack), f"binderlite.user={user}"]}
    ):
        assert time.monotonic() < deadline, "the server's container is still there"
        time.sleep(0.5)
    assert HubClient(hubstack).user(user) is None
    print(f"admin page test took {time.monotonic() - started:.1f} s")


def test_through_a_proxy_the_page_needs_the_token_and_posts_need_the_csrf_token(web):
    session = requests.Session()
    refused = session.get(f"{web}/admin/", headers=PROXIED, timeout=30)
    assert refused.status_code == 403 and 'name="token"' in refused.text and "data-user" not in refused.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', refused.text).group(1)
    wrong = session.post(f"{web}/admin/token", data={"token": "guess", "csrf_token": csrf}, headers=PROXIED, timeout=30)
    assert wrong.status_code == 403
    given = session.post(
        f"{web}/admin/token", data={"token": ADMIN_TOKEN, "csrf_token": csrf}, headers=PROXIED, timeout=30
    )
    assert given.status_code == 200 and given.url == f"{web}/admin/" and "Admin token accepted" in given.text
    assert session.get(f"{web}/admin/", headers=PROXIED, timeout=30).status_code == 200
    assert requests.get(f"{web}/admin/", headers=PROXIED, timeout=30).status_code == 403  # another browser
    # a form posted from elsewhere carries no CSRF token: refused, nothing stopped
    for client in (session, requests):
        answer = client.post(f"{web}/admin/servers/stop", data={"user": "anyone"}, timeout=30)
        assert answer.status_code == 400 and "CSRF" in answer.text


@pytest.fixture
def admin_stack(docker_client):
    """A hub in authenticated mode (PAM: two local accounts) whose admin_users names one of them."""

    def settings_in(state: str) -> Settings:
        return Settings(
            state_dir=state, registry="", auth_mode="authenticated", admin_users=ADMIN, **AUTH_PORTS, **HUB_NETWORKS
        )

    with local_users(ADMIN, NOT_ADMIN), core_stack(settings_in, docker_client, "bltest-adm-") as settings:
        yield settings


def test_only_users_the_hub_calls_admin_see_the_page(admin_stack):
    assert service_api(admin_stack, "POST", f"/users/{NOT_ADMIN}").status_code == 201
    app = create_app(admin_stack)
    for name, status in ((ADMIN, 200), (NOT_ADMIN, 403)):
        token = HubClient(admin_stack).new_server_token(name, note="bltest admin page")["token"]
        client = app.test_client()
        client.set_cookie(signin.COOKIE, signin.session_cookie_value(admin_stack, token), path="/admin")
        page = client.get("/admin/")
        assert page.status_code == status, page.get_data(as_text=True)[-800:]
    assert f"{NOT_ADMIN} is not one" in page.get_data(as_text=True)
    assert app.test_client().get("/admin/").status_code == 302  # signed out: sent to sign in


def test_stopping_a_real_build_from_the_page_ends_it_and_its_builder_and_rebuild_queues_it_again(settings, git_server):
    """A real build (no layer cache: it takes a while), stopped through the page's form (the app's test client,
    from 127.0.0.1): the worker and repo2docker stop, the build's stream and log end with the reason."""
    git_server.add_fixture("requirements", "bltest-admin-stop")
    uncached = settings.with_overrides(build_cache=False)
    events = build_events(uncached, resolve_link(git_server.link("bltest-admin-stop"), uncached))
    next(ev for ev in events if ev and ev.get("phase") == "building")
    queue = BuildQueue(uncached)
    (build,) = [b for b in queue.builds(("running",)) if "bltest-admin-stop" in b.repo_url]
    client = create_app(uncached).test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/").get_data(as_text=True)).group(1)
    stopped = client.post(f"/admin/builds/{build.id}/stop", data={"csrf_token": csrf}, follow_redirects=True)
    assert f"Stopped build {build.id}" in stopped.get_data(as_text=True)
    deadline = time.monotonic() + 30
    while pid_alive(build.pid) or build.image in _processes():
        assert time.monotonic() < deadline, "the worker or repo2docker is still running"
        time.sleep(0.2)
    assert [ev.get("phase") for ev in events if ev][-1] == "failed"
    assert "Build stopped by an administrator." in client.get(f"/admin/builds/{build.id}").get_data(as_text=True)
    rebuilt = client.post(f"/admin/builds/{build.id}/rebuild", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Rebuilding" in rebuilt.get_data(as_text=True)
    (again,) = [b for b in queue.builds(("queued", "running")) if b.image == build.image]
    assert (again.image, again.ref) == (build.image, build.ref)
    queue.stop(again.id, "Build stopped by the test.\n")


def _processes() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
