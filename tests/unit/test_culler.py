"""Culling decisions from hub, proxy and server activity (a fake hub; the real one is in integration tests)."""

from datetime import UTC, datetime, timedelta

from binderlite.hub.api import server_scope
from binderlite.launch import pool
from binderlite.scheduler.cull import ServerReport, decide
from binderlite.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def iso(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


class FakeAdmin:
    def __init__(self, users, server_activity=None, busy=(), route_activity=None, pooled=()):
        self._users = users
        self._pooled = {entry.user: entry for entry in pooled}
        self._activity = server_activity or {}
        self._busy = set(busy)
        self._routes = {path.rstrip("/"): {"last_activity": iso(ago)} for path, ago in (route_activity or {}).items()}
        self.probed = []

    def users(self):
        return self._users

    def proxy_routes(self):
        return self._routes

    def pooled(self):
        return self._pooled

    def probe(self, user, server, model, routes):
        self.probed.append(model["url"])
        return ServerReport(self._activity.get(model["url"]), model["url"] in self._busy)


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


def test_recent_proxy_activity_keeps_it_without_asking_the_server():
    admin = FakeAdmin([user("browsing", 2000, 900)], route_activity={"/user/browsing/": 20})
    assert decide(SETTINGS, admin, NOW) == []
    assert admin.probed == [], "servers the hub or proxy call active are not asked"


def test_busy_kernel_keeps_an_otherwise_idle_server():
    admin = FakeAdmin([user("busy", 2000, 900)], busy={"/user/busy/"})
    assert decide(SETTINGS, admin, NOW) == []


def test_an_unreachable_server_is_judged_on_hub_and_proxy_activity():
    class Silent(FakeAdmin):
        def probe(self, user, server, model, routes):
            return None

    assert [d.user for d in decide(SETTINGS, Silent([user("gone", 2000, 900)]), NOW)] == ["gone"]


def test_max_age_culls_even_an_active_server():
    admin = FakeAdmin([user("old", 4000, 1)], busy={"/user/old/"})
    decisions = decide(SETTINGS, admin, NOW)
    assert [d.user for d in decisions] == ["old"] and decisions[0].reason.startswith("age")
    assert admin.probed == []


def test_starting_servers_are_skipped():
    admin = FakeAdmin([user("starting", 5000, 5000, ready=False, pending="spawn")])
    assert decide(SETTINGS, admin, NOW) == []


def test_probe_token_opens_one_server_only():
    assert server_scope("alice", "") == "access:servers!server=alice/"
    assert server_scope("alice", "proj") == "access:servers!server=alice/proj"


def test_slow_servers_are_asked_at_the_same_time():
    import time

    class Slow(FakeAdmin):
        def probe(self, user, server, model, routes):
            time.sleep(0.5)
            return super().probe(user, server, model, routes)

    admin = Slow([user(f"idle{i}", 2000, 900) for i in range(8)])
    started = time.monotonic()
    assert len(decide(SETTINGS, admin, NOW)) == 8
    assert time.monotonic() - started < 2.0, "eight half-second probes took turns"


def pooled(name: str, state: str, claimed_ago: float | None = None) -> pool.Entry:
    claimed = (NOW - timedelta(seconds=claimed_ago)).timestamp() if claimed_ago is not None else None
    return pool.Entry(name, "img:1", "sha256:1", state, (NOW - timedelta(hours=9)).timestamp(), claimed=claimed)


def test_unclaimed_pool_servers_are_never_culled_but_claimed_ones_are_from_their_claim():
    users = [user(name, 9 * 3600, 9 * 3600) for name in ("pool-a", "pool-b", "pool-old", "pool-new")]
    admin = FakeAdmin(
        users,
        pooled=[
            pooled("pool-a", pool.READY),
            pooled("pool-b", pool.STARTING),
            pooled("pool-old", pool.CLAIMED, claimed_ago=700),
            pooled("pool-new", pool.CLAIMED, claimed_ago=60),
        ],
    )
    decisions = decide(SETTINGS, admin, NOW)
    # started 9 h ago and never used: only the one claimed 700 s ago (idle > 600 s) goes, deleted with its user
    assert [(d.user, d.delete_user) for d in decisions] == [("pool-old", True)]
    assert decisions[0].reason.startswith("idle")
    assert "/user/pool-a/" not in admin.probed and "/user/pool-b/" not in admin.probed
