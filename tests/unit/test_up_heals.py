"""`binderlite up` restarts a service that dies: the backoff schedule, the give-up rule, and what it prints."""

from __future__ import annotations

import pytest

from binderlite.errors import ServiceError
from binderlite.services import supervisor, up
from binderlite.services.backoff import GIVE_UP_AFTER, MAX_DELAY, WINDOW, RestartPolicy
from binderlite.services.table import Service
from binderlite.settings import Settings


def test_backoff_doubles_from_one_second_up_to_thirty():
    policy = RestartPolicy(give_up_after=100)
    delays = [policy.died(now=float(i)) for i in range(7)]
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert MAX_DELAY == 30


def test_gives_up_on_the_fifth_death_within_two_minutes():
    policy = RestartPolicy()
    assert [policy.died(now=t) for t in (0, 10, 20, 30)] == [1, 2, 4, 8]
    assert policy.died(now=40) is None
    assert policy.describe() == "5 deaths within 120 s"
    assert (GIVE_UP_AFTER, WINDOW) == (5, 120)


def test_deaths_spread_over_more_than_the_window_never_give_up_and_start_over():
    policy = RestartPolicy()
    delays = [policy.died(now=t * (WINDOW + 1)) for t in range(20)]
    assert delays == [1] * 20


class FakeProcesses:
    """The supervisor's view of processes, for the healer: pids that die and restart on request."""

    def __init__(self, monkeypatch, names):
        self.pids = {name: 100 + i for i, name in enumerate(names)}
        self.next_pid = 500
        self.fail_starts: set[str] = set()
        self.stopped: list[str] = []
        monkeypatch.setattr(supervisor, "running_pid", lambda settings, name: self.pids.get(name))
        monkeypatch.setattr(supervisor, "how_it_ended", lambda pid: "died with signal 9")
        monkeypatch.setattr(supervisor, "clear_leftovers", lambda service, pid: None)
        monkeypatch.setattr(supervisor, "start", self.start)
        monkeypatch.setattr(supervisor, "stop", self.stop)
        monkeypatch.setattr(supervisor, "log_tail", lambda settings, name: f"last line of {name}.log")

    def start(self, settings, service):
        if service.name in self.fail_starts:
            raise ServiceError(f"{service.name} exited with status 1 while starting (log x):\nboom")
        self.next_pid += 1
        self.pids[service.name] = self.next_pid
        return self.next_pid

    def stop(self, settings, name, timeout=15.0):
        self.stopped.append(name)
        self.pids.pop(name, None)

    def kill(self, name):
        self.pids.pop(name)


@pytest.fixture
def healer(monkeypatch, tmp_path):
    names = ["registry", "proxy", "hub", "web", "scheduler"]
    procs = FakeProcesses(monkeypatch, names)
    lines: list[str] = []
    services = [Service(name=n, summary=n, argv=["true"], ready=lambda: True) for n in names]
    h = up.Healer(Settings(state_dir=str(tmp_path)), services, lines.append)
    return h, procs, lines


def test_a_dead_service_is_restarted_after_its_backoff_and_says_so(healer):
    h, procs, lines = healer
    procs.kill("web")
    h.check(now=0)
    assert lines == ["web (pid 103) died with signal 9; restarting in 1 s"]
    h.check(now=0.5)
    assert "web" not in procs.pids
    h.check(now=1.0)
    assert lines[-1] == "web is back (pid 501)"
    assert procs.pids["web"] == 501


def test_a_restarted_proxy_brings_a_hub_restart_that_puts_the_routes_back(healer):
    h, procs, lines = healer
    procs.kill("proxy")
    h.check(now=0)
    h.check(now=1)
    assert lines[1:] == [
        "proxy is back (pid 501)",
        "restarting hub so that it gives the new proxy the servers' routes",
        "hub is back (pid 502)",
    ]
    assert procs.stopped == ["hub"]


def test_a_service_that_keeps_dying_makes_up_give_up_with_its_log(healer):
    h, procs, lines = healer
    procs.fail_starts.add("scheduler")
    procs.kill("scheduler")
    now = 0.0
    with pytest.raises(ServiceError) as caught:
        for _ in range(100):
            h.check(now=now)
            now += 1
    message = caught.value.message
    assert message.startswith("scheduler did not come back (scheduler exited with status 1 while starting")
    assert "giving up on it (5 deaths within 120 s), stopping binderlite" in message
    assert message.endswith("last line of scheduler.log")
    assert lines[0] == "scheduler (pid 104) died with signal 9; restarting in 1 s"
    assert lines[-1].endswith("restarting in 8 s")
