"""``binderlite up``: check what is needed, run every service, stop them all cleanly.

The registry, the proxy, JupyterHub, the web app (gunicorn) and the
scheduler each run as their own process (see ``table``); ``prepare`` makes
what they need first (the same step ``binderlite-prepare.service`` runs on a
server), and this module adds the foreground loop that stops everything on
Ctrl-C or SIGTERM, and stops all if one of them dies.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from binderlite.services import supervisor
from binderlite.services.prepare import prepare
from binderlite.settings import Settings

WATCH_INTERVAL = 2.0


def run_all(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Start everything, wait for a signal or a dead service, then stop everything."""
    wanted = prepare(settings)
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
