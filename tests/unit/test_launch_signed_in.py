"""Launches for signed-in users: one named server per repository, reopened; the user's and the rule's quotas."""

from __future__ import annotations

import re
import time

import pytest

from binderlite import launch
from binderlite.hub.identity import SignedInUser
from binderlite.settings import AccessRule, Settings
from tests.helpers.stack import fake_resolved

ALICE = SignedInUser("alice", frozenset({"physics"}))
RESOLVED = fake_resolved("physics/intro")
SERVER = launch.server_name_for(RESOLVED.repo_url)
RULE = AccessRule("physics", re.compile("^git/"), ("physics",), max_servers=2, memory_limit="1G", cpu_limit=0.5)


class SignedInHub:
    """The part of ``HubClient`` a signed-in launch uses, recording calls."""

    def __init__(self, servers: dict | None = None, running: list[dict] | None = None):
        self.servers = servers or {}
        self.running = running or []
        self.started: list[tuple] = []
        self.tokens: list[tuple] = []

    def user(self, name):
        return {"name": name, "servers": self.servers}

    def running_servers(self):
        return self.running

    def start_server(self, name, user_options, server=""):
        self.started.append((name, server, user_options))

    def progress(self, name, deadline, server=""):
        yield {"progress": 100, "ready": True, "message": f"Server {server} ready"}

    def new_server_token(self, name, server="", note="", expires_in=None):
        self.tokens.append((name, server, expires_in))
        return {"token": f"token-{server}", "id": "1"}

    def stop_server(self, user, server=""):
        pass


@pytest.fixture
def hub(monkeypatch):
    fake = SignedInHub()
    monkeypatch.setattr(launch, "HubClient", lambda settings, session=None: fake)
    return fake


def events(tmp_path, **kwargs):
    settings = Settings(state_dir=str(tmp_path), public_url="https://binder.example/", total_quota=0)
    return list(launch.launch(settings.with_overrides(**kwargs), RESOLVED, "img:1", user=ALICE, rule=RULE))


def test_server_names_are_one_per_repository_short_and_readable():
    name = launch.server_name_for("https://git.dept.example/physics/intro-course.git")
    assert name.startswith("physics-intro-course-") and len(name) <= 30
    assert name == launch.server_name_for("https://git.dept.example/physics/intro-course.git")
    assert name != launch.server_name_for("https://other.example/physics/intro-course.git")
    long = launch.server_name_for("https://x.example/" + "a-very-long-group-name/" * 5 + "repo")
    assert len(long) <= 30 and re.fullmatch(r"[a-z0-9-]+", long)


@pytest.mark.parametrize(
    "url",
    [
        "https://git.dept.example/physics/intro-course.git",
        "http://127.0.0.1:41269/bltest-ldap-physics-lab.git",
        "https://x.example/" + "a-very-long-group-name/" * 5 + "repo",
        "https://x.example/2024/01-intro",
        "https://x.example/teaching/x1-2024-mechanics-and-waves",
        "https://x.example/123",
    ],
)
def test_server_names_are_names_jupyterhub_takes_for_a_new_server(url):
    from jupyterhub.slugs import is_valid_safe_slug  # what the hub checks before it makes a named server

    assert is_valid_safe_slug(launch.server_name_for(url)), launch.server_name_for(url)


def test_a_new_launch_starts_the_users_named_server_with_the_rules_limits(tmp_path, hub):
    evs = events(tmp_path)
    assert evs[-1]["phase"] == "ready"
    assert evs[-1]["url"] == f"https://binder.example/user/alice/{SERVER}/"
    ((user, server, options),) = hub.started
    assert (user, server) == ("alice", SERVER)
    assert options["access_rule"] == "physics" and options["limits"] == {"memory_limit": "1G", "cpu_limit": 0.5}
    assert "token" not in options
    assert hub.tokens == [("alice", SERVER, 21600)]


def test_launching_a_repository_the_user_runs_reopens_it(tmp_path, hub):
    hub.servers = {SERVER: {"ready": True, "user_options": {"repo_url": RESOLVED.repo_url}}}
    evs = events(tmp_path)
    assert evs[-1]["phase"] == "ready" and hub.started == []
    assert any("opening that server" in (e.get("message") or "") for e in evs)


def test_over_servers_per_user_gets_binderhubs_quota_wording(tmp_path, hub):
    hub.servers = {"a-1": {"ready": True}, "b-2": {"ready": True}}
    final = events(tmp_path, servers_per_user=2)[-1]
    assert final["phase"] == "failed"
    assert final["message"].strip() == (
        "User alice already has the maximum of 2 named servers.  One must be deleted before a new server can be created"
    )
    assert hub.started == []
    hub.servers[SERVER] = {"ready": True}  # reopening is not a new server
    assert events(tmp_path, servers_per_user=2)[-1]["phase"] == "ready"


def test_a_rules_max_servers_counts_every_users_servers_of_that_rule(tmp_path, hub):
    hub.running = [{"access_rule": "physics"}, {"access_rule": "physics"}, {"access_rule": "other"}]
    final = events(tmp_path)[-1]
    assert final["phase"] == "failed" and "access rule 'physics'" in final["message"] and hub.started == []


def test_two_launches_at_once_cannot_both_take_a_rules_last_place(tmp_path, monkeypatch):
    """Each launch counts the rule's servers, then starts one; the hub lists it only once started (slowly)."""
    import threading

    class SlowHub(SignedInHub):
        def running_servers(self):
            return list(self.running)

        def start_server(self, name, user_options, server=""):
            time.sleep(0.3)  # the hub takes a while before the new server is listed
            self.running.append(user_options)
            super().start_server(name, user_options, server)

    fake = SlowHub(running=[{"access_rule": "physics"}])  # one of the rule's two places taken
    monkeypatch.setattr(launch, "HubClient", lambda settings, session=None: fake)
    settings = Settings(state_dir=str(tmp_path), total_quota=0)
    finals = {}

    def run(name):
        user = SignedInUser(name, frozenset({"physics"}))
        finals[name] = list(launch.launch(settings, RESOLVED, "img:1", user=user, rule=RULE))[-1]

    threads = [threading.Thread(target=run, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(final["phase"] for final in finals.values()) == ["failed", "ready"], finals
    assert len(fake.started) == 1
