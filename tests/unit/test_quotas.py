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
        with quotas.slot(settings, hub, repo_url):
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
    for url in ("a", "a", "b"):
        with quotas.slot(settings, hub, url):
            hub.start(url)
    with pytest.raises(quotas.QuotaExceeded, match="Too many users running a! Try again soon.") as err:
        with quotas.slot(settings, hub, "a"):
            pass
    assert err.value.status == 429
    with quotas.slot(settings, hub, "b"):
        pass


def test_a_launch_that_asked_the_hub_before_another_started_still_counts_it(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=1)
    hub = FakeHub()

    class StaleHub:
        """Answers as the hub did before the other launch's server existed, which starts meanwhile."""

        def running_servers(self):
            answer = hub.running_servers()
            with quotas.slot(settings, hub, "a"):
                hub.start("a")
            return answer

    with pytest.raises(quotas.QuotaExceeded):
        with quotas.slot(settings, StaleHub(), "a"):
            pass
    assert len(hub.servers) == 1, "only the other launch started"


def test_a_started_server_is_counted_once_and_a_failed_launch_gives_its_slot_back(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=2)
    hub = FakeHub()
    with quotas.slot(settings, hub, "a"):
        hub.start("a")
    with pytest.raises(RuntimeError):
        with quotas.slot(settings, hub, "a"):
            raise RuntimeError("the launch failed")
    with quotas.slot(settings, hub, "a"):  # 1 running (its slot not counted again) + this one = 2
        hub.start("a")
    with pytest.raises(quotas.QuotaExceeded):
        with quotas.slot(settings, hub, "a"):
            pass
    hub.servers.clear()  # culled
    with quotas.slot(settings, hub, "a"):  # a stopped server no longer counts
        pass


def test_a_dead_slot_expires(tmp_path):
    settings = Settings(state_dir=str(tmp_path), total_quota=1)
    db = quotas._db(settings)
    db.execute("INSERT INTO slots (id, repo_url, created) VALUES ('dead', 'a', ?)", (time.time() - 1000,))
    db.close()
    with quotas.slot(settings, FakeHub(), "a"):
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
