"""Culling decisions from hub and server activity (a fake hub; the real one is in integration tests)."""

from datetime import UTC, datetime, timedelta

from binderlite.culler import decide
from binderlite.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def iso(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


class FakeAdmin:
    def __init__(self, users, server_activity=None, busy=()):
        self._users = users
        self._activity = server_activity or {}
        self._busy = set(busy)
        self.kernel_questions = []

    def users(self):
        return self._users

    def server_last_activity(self, server):
        return self._activity.get(server["url"])

    def kernel_busy(self, server):
        self.kernel_questions.append(server["url"])
        return server["url"] in self._busy


def user(name, started, hub_activity, ready=True, pending=None):
    url = f"/user/{name}/"
    server = {
        "url": url,
        "ready": ready,
        "pending": pending,
        "started": iso(started),
        "last_activity": iso(hub_activity),
    }
    return {"name": name, "servers": {"": server}}


SETTINGS = Settings(cull_idle_timeout=600, cull_max_age=3600)


def test_idle_server_is_culled_and_user_deleted_in_anonymous_mode():
    decisions = decide(SETTINGS, FakeAdmin([user("idle", 2000, 700)]), NOW)
    assert [(d.user, d.delete_user) for d in decisions] == [("idle", True)]
    assert decisions[0].reason.startswith("idle")


def test_recent_activity_on_the_server_keeps_it():
    admin = FakeAdmin([user("active", 2000, 900)], server_activity={"/user/active/": NOW - timedelta(seconds=30)})
    assert decide(SETTINGS, admin, NOW) == []
    assert admin.kernel_questions == [], "asking for kernels counts as activity: only ask before culling"


def test_busy_kernel_keeps_an_otherwise_idle_server():
    admin = FakeAdmin([user("busy", 2000, 900)], busy={"/user/busy/"})
    assert decide(SETTINGS, admin, NOW) == []


def test_max_age_culls_even_an_active_server():
    admin = FakeAdmin([user("old", 4000, 1)], busy={"/user/old/"})
    decisions = decide(SETTINGS, admin, NOW)
    assert [d.user for d in decisions] == ["old"] and decisions[0].reason.startswith("age")


def test_starting_servers_are_skipped():
    admin = FakeAdmin([user("starting", 5000, 5000, ready=False, pending="spawn")])
    assert decide(SETTINGS, admin, NOW) == []
