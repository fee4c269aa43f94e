"""``binderlite up``: check what is needed, run every service, restart one that dies, stop them all cleanly.

The registry, the proxy, JupyterHub, the web app (gunicorn) and the
scheduler each run as their own process (see ``table``); ``prepare`` makes
what they need first (the same step ``binderlite-prepare.service`` runs on a
server). This module adds the foreground loop: it stops everything on Ctrl-C
or SIGTERM, and restarts a service that dies, with the backoff of
``backoff.RestartPolicy``, giving up (everything stopped, the service's log
printed, exit status 4) only when one keeps dying. Users' servers keep
running through every restart: the hub never stops them (``cleanup_servers``
is off), and when the proxy comes back without routes the hub is restarted
too, since a hub puts every server's route back when it starts (otherwise
only at its next activity update, within 30 s: systemd's case). Builds run in
detached processes and are followed again by the restarted web app.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from binderlite.errors import ServiceError
from binderlite.services import supervisor
from binderlite.services.backoff import RestartPolicy
from binderlite.services.prepare import prepare
from binderlite.services.table import Service
from binderlite.settings import Settings
from binderlite.workshop import classroom

WATCH_INTERVAL = 1.0
ROUTES_FROM = {"proxy": "hub"}  # a restarted proxy has no routes; restarting this service puts them back


class Healer:
    """Watches the services ``up`` started; restarts one that died once its backoff has passed."""

    def __init__(self, settings: Settings, services: list[Service], echo: Callable[[str], None]):
        self.settings = settings
        self.services = {s.name: s for s in services}
        self.echo = echo
        self.policies = {s.name: RestartPolicy() for s in services}
        self.pids = {s.name: supervisor.running_pid(settings, s.name) for s in services}
        self.due: dict[str, float] = {}  # service → when to restart it (monotonic)

    def check(self, now: float | None = None) -> None:
        """Notice deaths and restart what is due; ServiceError when a service keeps dying."""
        now = time.monotonic() if now is None else now
        for name, pid in self.pids.items():
            if name not in self.due and pid is not None and supervisor.running_pid(self.settings, name) is None:
                self._died(name, f"{name} (pid {pid}) {supervisor.how_it_ended(pid)}", pid, now)
        for name in [n for n, at in self.due.items() if at <= now]:
            del self.due[name]
            self._restart(name, now)

    def _died(self, name: str, what: str, pid: int | None, now: float) -> None:
        self.pids[name] = None
        if pid is not None:
            supervisor.clear_leftovers(self.services[name], pid)
        delay = self.policies[name].died(now)
        if delay is None:
            raise ServiceError(
                f"{what}; giving up on it ({self.policies[name].describe()}), stopping binderlite. "
                f"End of {self.settings.logs_dir / (name + '.log')}:\n{supervisor.log_tail(self.settings, name)}"
            )
        self.echo(f"{what}; restarting in {delay:.0f} s")
        self.due[name] = now + delay

    def _restart(self, name: str, now: float) -> None:
        try:
            pid = supervisor.start(self.settings, self.services[name])
        except ServiceError as exc:
            self._died(name, f"{name} did not come back ({exc.message.splitlines()[0]})", None, now)
            return
        self.pids[name] = pid
        self.echo(f"{name} is back (pid {pid})")
        follower = ROUTES_FROM.get(name)
        if follower and self.pids.get(follower) is not None and follower not in self.due:
            self.echo(f"restarting {follower} so that it gives the new {name} the servers' routes")
            supervisor.stop(self.settings, follower)
            self.pids[follower] = None
            self._restart(follower, now)


def run_all(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Start everything, keep it running until a signal, then stop everything.

    With ``settings.classroom``, the web app and the proxy serve the room's
    network, sized for the room (``workshop.classroom``).
    """
    room = None
    if settings.classroom:
        settings, room = classroom.enter(settings)
    try:
        _serve(settings, echo, room)
    finally:
        if room is not None:
            classroom.leave(settings)


def _serve(settings: Settings, echo: Callable[[str], None], room: classroom.Room | None) -> None:
    wanted = prepare(settings)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.start_all(settings, wanted)
    echo(f"binderlite is up: http://{settings.web_host}:{settings.web_port}/ (Ctrl-C stops it)")
    if room is not None:
        echo(classroom.announce(room))
    healer = Healer(settings, wanted, echo)
    try:
        while not stopping:
            healer.check()
            time.sleep(WATCH_INTERVAL)
    finally:
        echo("Stopping binderlite...")
        supervisor.stop_all(settings, wanted)
