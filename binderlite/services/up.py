"""``binderlite up``: check what is needed, run every service, stop them all cleanly.

The registry, the proxy, JupyterHub, the web app (gunicorn) and the
scheduler each run as their own process (see ``table``); this module adds
the prerequisite checks with actionable messages, binderlite's Docker networks
and their kernel rules (before any service asks for the hub's address on
them), and the foreground loop that stops everything on Ctrl-C or SIGTERM,
and stops all if one of them dies.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable

from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BaseImageMissingError, ConfigError
from binderlite.sandbox.dockernet import ensure_networks
from binderlite.services import supervisor
from binderlite.services.table import all_services
from binderlite.settings import Settings

WATCH_INTERVAL = 2.0


def check_prerequisites(settings: Settings) -> None:
    """Raise with a message that says how to fix the first thing missing."""
    client = docker_client(settings)
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        raise ConfigError(
            "docker buildx is not installed; repo2docker needs it. "
            "Run scripts/install-debian.sh (it installs docker-buildx from Debian trixie)."
        )
    if shutil.which("configurable-http-proxy") is None:
        raise ConfigError("configurable-http-proxy is not on PATH: npm install -g configurable-http-proxy@4")
    if settings.registry and shutil.which("docker-registry") is None:
        raise ConfigError("docker-registry is not installed: apt-get install docker-registry (or set registry = '').")
    if settings.build_packs == "binderlite" and not local_image_exists(client, settings.base_image):
        raise BaseImageMissingError(f"Base image {settings.base_image} is missing: run `binderlite base-image`.")


def run_all(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Start everything, wait for a signal or a dead service, then stop everything."""
    settings.ensure_dirs()
    check_prerequisites(settings)
    ensure_networks(settings, force=True)
    wanted = all_services(settings)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.start_all(settings, wanted)
    echo(f"binderlite is up: http://{settings.web_host}:{settings.web_port}/ (Ctrl-C stops it)")
    try:
        while not stopping:
            dead = [s.name for s in wanted if supervisor.running_pid(settings, s.name) is None]
            if dead:
                echo(f"{', '.join(dead)} stopped unexpectedly (logs in {settings.logs_dir}); stopping binderlite")
                break
            time.sleep(WATCH_INTERVAL)
    finally:
        echo("Stopping binderlite...")
        supervisor.stop_all(settings, wanted)
