"""Quotas hold under concurrency (slots counted with the hub's servers); the per-client rate limit."""

import threading
import time

import pytest

from binderlite.launch import quotas
from binderlite.settings import Settings


class FakeHub:
    """The hub's running servers; a server appears when its slot's holder 'starts' it."""

    def __init__(self):
        self.servers: list[dict] = []
        self.lock = threading.Lock()

    def running_servers(self):
        with self.lock:
            return list(self.servers)

    def start(self, repo_url, user=""):
        with self.lock:
            self.servers.append({"user": user, "repo_url": repo_url})


def _launch(settings, hub, repo_url, results, barrier):
    user = f"u{threading.get_ident()}"
    barrier.wait()
    try:
        with quotas.slot(settings, hub, repo_url, user):
            time.sleep(0.05)  # creating the user and asking the hub to start the server
            hub.start(repo_url, user)
        results.append("started")
    except quotas.QuotaExceeded as exc:
        results.append(exc.message)


def test_twenty_concurrent_launches_against_a_quota_of_three(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=3)
    hub, results = FakeHub(), []
    barrier = threading.Barrier(20)
    threads = [threading.Thread(target=_launch, args=(settings, hub, "r", results, barrier)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("started") == 3 and len(hub.servers) == 3
    assert results.count("Too many users on this BinderHub! Try again soon.") == 17


def test_per_repo_quota_counts_one_repository(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=0, per_repo_quota=2)
    hub = FakeHub()
    for user, url in (("u1", "a"), ("u2", "a"), ("u3", "b")):
        with quotas.slot(settings, hub, url, user):
            hub.start(url, user)
    with pytest.raises(quotas.QuotaExceeded, match="Too many users running a! Try again soon.") as err:
        with quotas.slot(settings, hub, "a", "u4"):
            pass
    assert err.value.status == 429
    with quotas.slot(settings, hub, "b", "u5"):
        pass


def test_a_slot_counts_until_the_hub_lists_its_server_or_its_launch_fails(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=2)
    hub = FakeHub()
    with quotas.slot(settings, hub, "a", "first"):
        pass  # started, but the hub does not list it yet
    with quotas.slot(settings, hub, "a", "second"):
        with pytest.raises(quotas.QuotaExceeded):  # the first still counts: it is on its way
            with quotas.slot(settings, hub, "a", "third"):
                pass
        raise_after = True
        hub.start("a", "second")
    assert raise_after
    hub.start("a", "first")
    with pytest.raises(quotas.QuotaExceeded):  # listed by the hub now, each counted once: 2 of 2
        with quotas.slot(settings, hub, "a", "fourth"):
            pass
    roomier = Settings(state_dir=str(tmp_path), total_quota=3)
    with pytest.raises(RuntimeError):
        with quotas.slot(roomier, hub, "a", "fails"):
            raise RuntimeError("the launch failed")
    with quotas.slot(roomier, hub, "a", "fifth"):  # the failed launch gave its slot back: 2 + this one
        pass
    with pytest.raises(quotas.QuotaExceeded):
        with quotas.slot(roomier, hub, "a", "sixth"):
            pass


def test_a_dead_slot_expires(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=1)
    db = quotas._db(settings)
    db.execute("INSERT INTO slots (id, user, repo_url, created) VALUES ('dead', 'gone', 'a', ?)", (time.time() - 1000,))
    db.close()
    with quotas.slot(settings, FakeHub(), "a", "alive"):
        pass


def test_no_quota_asks_nothing(tmp_path):
    class Unreachable:
        def running_servers(self):
            raise AssertionError("asked the hub")

    with quotas.slot(Settings(state_dir=str(tmp_path), total_quota=0, per_repo_quota=0), Unreachable(), "a"):
        pass


def test_rate_limit_per_client(tmp_path):
    settings = Settings(state_dir=str(tmp_path), launch_rate_limit=3, launch_rate_period=60)
    now = 1000.0
    assert [quotas.rate_limited(settings, "10.0.0.1", now + i) for i in range(3)] == [None, None, None]
    wait = quotas.rate_limited(settings, "10.0.0.1", now + 3)
    assert wait == pytest.approx(57)
    assert quotas.rate_limited(settings, "10.0.0.2", now + 3) is None, "another client is not limited"
    assert quotas.rate_limited(settings, "10.0.0.1", now + 61) is None, "the window slides"
    assert quotas.rate_limited(Settings(state_dir=str(tmp_path), launch_rate_limit=0), "x") is None
