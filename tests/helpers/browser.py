"""What the browser tests share: `binderlite up` on test ports, and headless Chromium that stays on 127.0.0.1.

``running_appliance`` starts the whole appliance (registry, proxy, hub, web
app, scheduler) the way a user does and stops it, removing the servers it left.
``chromium`` resolves every host name but 127.0.0.1 and localhost to nothing,
so a page that tries to go elsewhere fails in the browser and no request
leaves the machine; it keeps the console and network logs for assertions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService

from binderlite.settings import Settings
from tests.helpers.containers import remove_stack_containers
from tests.helpers.diagnostics import watching
from tests.helpers.net import wait_for_http
from tests.helpers.stack import binderlite_cli, service_state_dir, stop_process

PORTS = {"WEB_PORT": "18585", "PROXY_PORT": "18840", "PROXY_API_PORT": "18841", "HUB_PORT": "18881"}
WEB = f"http://127.0.0.1:{PORTS['WEB_PORT']}"


def appliance_env(state: Path, extra: dict | None = None) -> dict:
    """The environment `binderlite up` and the CLI run with in these tests (``extra``: more settings)."""
    env = dict(
        os.environ,
        BINDERLITE_STATE_DIR=str(state),
        BINDERLITE_ALLOW_LOCAL_REPOS="true",
        BINDERLITE_IMAGE_PREFIX="bltest-up-",
        BINDERLITE_HOME_VOLUME_PREFIX="bltest-home-",  # signed-in users' folders: removed by the test prefix
        BINDERLITE_REGISTRY="127.0.0.1:18850",
        BINDERLITE_BINDER_LAUNCH_HOST=WEB + "/",
    )
    env.update({f"BINDERLITE_{k}": v for k, v in PORTS.items()})
    env.update(extra or {})
    return env


@contextlib.contextmanager
def running_appliance(
    docker_client,
    extra: dict | None = None,
    args: tuple[str, ...] = (),
    web: str = WEB,
    files: dict[str, str] | None = None,
) -> Iterator[dict]:
    """`binderlite up`, healthy, with a new state dir (removed afterwards); yields ``{"state", "proc"}``.

    ``extra``: more ``BINDERLITE_*`` settings for every service; ``args``: options of `up`; ``web``: where
    the web app answers; ``files``: files to write into the state dir first (path relative to it → text).

    Its output is ``<state>/logs/up.log``, beside the services' logs, where a failing test's report finds it.
    """
    state = service_state_dir("bltest-up-")  # the proxy and the registry run as the service user
    (state / "logs").mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text(text)
    up_log = state / "logs" / "up.log"
    log = open(up_log, "wb")
    proc = subprocess.Popen(
        [*binderlite_cli(), "up", *args], env=appliance_env(state, extra), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        if not wait_for_http(f"{web}/health", timeout=180, process=proc, interval=1):
            assert proc.poll() is None, up_log.read_text()[-4000:]
            pytest.fail("binderlite up did not become healthy:\n" + up_log.read_text()[-4000:])
        with watching(state):
            yield {"state": state, "proc": proc}
    finally:
        stop_process(proc, timeout=90)
        # `up` leaves users' servers running across restarts (cleanup_servers=False); tests remove theirs.
        remove_stack_containers(docker_client, Settings(state_dir=str(state)))
        log.close()
        print(up_log.read_text()[-3000:])
        shutil.rmtree(state, ignore_errors=True)


# Headless Chromium as this machine needs it: without the background-networking flags it keeps
# trying Google's hosts, which the closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def chromium(also: tuple[str, ...] = ()) -> webdriver.Chrome:
    """Headless Chromium that reaches 127.0.0.1 only, leaves alerts open, and logs console and network.

    ``also``: more loopback addresses it may reach (the classroom test's 127.0.0.2).
    """
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    excluded = "".join(f", EXCLUDE {address}" for address in ("127.0.0.1", "localhost", *also))
    for flag in (*CHROMIUM_FLAGS, f"--host-resolver-rules=MAP * ~NOTFOUND{excluded}"):
        options.add_argument(flag)
    options.unhandled_prompt_behavior = "ignore"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=options)
