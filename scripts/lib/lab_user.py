"""A lab server's user, from outside the machine: HTTPS only, the machine's CA only.

Used by scripts/check-lab-server.sh. The public name resolves to the ports the
machine container publishes on this host's 127.0.0.1 (as DNS would point it
at the server), so TLS, SNI and the Host header are the real name's.

    python scripts/lib/lab_user.py --name N --ca CA --port 443=18443 --port 80=18080 COMMAND ...

Commands (each prints one line, exits non-zero with the reason on failure):
  launch SPEC             /build/<SPEC> over HTTPS to ready; prints the server URL and token
  kernel URL TOKEN        runs 1+1 on a kernel over wss; prints its result
  status URL TOKEN        GET <server>/api/status; prints the HTTP status
  poll URL TOKEN STOP     GET <server>/api/status every 0.5 s until the file STOP exists; prints "ok failed"
  redirect                GET http://<name>/; prints the status and Location
  browser SPEC            headless Chromium trusting CA opens /v2/<SPEC>; prints the JupyterLab URL it lands on
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers.browser import CHROMIUM_FLAGS  # noqa: E402
from tests.helpers.kernel import run_code  # noqa: E402
from tests.helpers.streams import final_event, stream_events  # noqa: E402


def resolve_to_published(name: str, ports: dict[int, int]) -> None:
    """Make this process reach ``name:<port>`` on 127.0.0.1:<published port>."""
    original = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == name:
            return original("127.0.0.1", ports.get(int(port), port), *args, **kwargs)
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def launch(base: str, spec: str) -> None:
    events = stream_events(f"{base}build/{spec}")
    final = final_event(events)
    if final.get("phase") != "ready":
        sys.exit(f"launch failed: {final} (phases: {[e.get('phase') for e in events]})")
    if not final["url"].startswith(base):
        sys.exit(f"the server's URL {final['url']} is not on {base}")
    print(final["url"], final["token"])


def status(url: str, token: str) -> int:
    return requests.get(f"{url}api/status", headers={"Authorization": f"token {token}"}, timeout=10).status_code


def poll(url: str, token: str, stop: Path) -> None:
    ok = failed = 0
    while not stop.exists():
        started = time.monotonic()
        try:
            good = status(url, token) == 200
        except requests.RequestException:
            good = False
        ok, failed = ok + good, failed + (not good)
        if not good:
            print(f"poll failed at {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
    print(ok, failed)


def redirect(name: str) -> None:
    resp = requests.get(f"http://{name}/health", allow_redirects=False, timeout=10)
    print(resp.status_code, resp.headers.get("Location", ""))


def browser(base: str, name: str, ca: str, ports: dict[int, int], spec: str) -> None:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    home = Path(tempfile.mkdtemp(prefix="bltest-lab-chromium-"))
    nssdb = f"sql:{home}/.pki/nssdb"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    # Real CA trust: Chromium on Linux reads the user's NSS database in $HOME.
    subprocess.run(["certutil", "-d", nssdb, "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", nssdb, "-A", "-t", "C,,", "-n", "binderlite-lab-ca", "-i", ca], check=True)
    rules = ", ".join(f"MAP {name}:{port} 127.0.0.1:{published}" for port, published in ports.items())
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        *CHROMIUM_FLAGS,
        f"--user-data-dir={home}/profile",
        f"--host-resolver-rules={rules}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    service = Service("/usr/bin/chromedriver", env={**os.environ, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(f"{base}v2/{spec}?urlpath=lab")
        WebDriverWait(driver, 600).until(lambda d: "/user/" in d.current_url)
        # JupyterLab has drawn itself (its launcher) and its kernel list came over the websocket-backed API.
        try:
            WebDriverWait(driver, 180).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-LauncherCard"))
        except TimeoutException:
            for entry in driver.get_log("browser")[-20:]:
                print(entry, file=sys.stderr)
            raise
        if not driver.current_url.startswith(base):
            sys.exit(f"the browser left {base}: {driver.current_url}")
        if os.environ.get("BLTEST_LAB_SCREENSHOT"):
            driver.save_screenshot(os.environ["BLTEST_LAB_SCREENSHOT"])
        print(driver.current_url.split("?")[0])
    finally:
        driver.quit()
        subprocess.run(["rm", "-rf", str(home)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--port", action="append", default=[], help="PORT=PUBLISHED on 127.0.0.1")
    parser.add_argument("command")
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    ports = {int(a): int(b) for a, b in (p.split("=") for p in opts.port)}
    resolve_to_published(opts.name, ports)
    os.environ["REQUESTS_CA_BUNDLE"] = opts.ca
    os.environ["WEBSOCKET_CLIENT_CA_BUNDLE"] = opts.ca
    base = f"https://{opts.name}/"
    command, args = opts.command, opts.args
    if command == "launch":
        launch(base, args[0])
    elif command == "kernel":
        print(run_code(args[0], args[1], "1+1"))
    elif command == "status":
        print(status(args[0], args[1]))
    elif command == "poll":
        poll(args[0], args[1], Path(args[2]))
    elif command == "redirect":
        redirect(opts.name)
    elif command == "browser":
        browser(base, opts.name, opts.ca, ports, args[0])
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
