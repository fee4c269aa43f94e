"""The launcher's retries, quotas, clean-up and events, against a fake JupyterHub client.

``binderlite.launch.HubClient`` is replaced by ``FakeHub``, which plays the
hub's answers from a script and records every call; ``time.sleep`` records
the back-off delays instead of waiting. The real hub is in
tests/integration/test_launch_hub.py.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from binderlite import launch
from binderlite.errors import HubError
from binderlite.launch import quotas
from binderlite.settings import Settings
from tests.helpers.stack import fake_resolved

NAME = "bltest/r1"
REPO_URL = fake_resolved(NAME).repo_url
READY = [{"progress": 50, "message": "Spawning server..."}, {"progress": 100, "ready": True, "message": "ready"}]
HUB_DOWN = "JupyterHub is not reachable (ConnectionError); is it running?"  # what HubClient.call raises


class FakeHub:
    """The part of ``HubClient`` the launcher uses; ``down`` makes every call fail as a stopped hub does."""

    def __init__(self):
        self.down = False
        self.running: list[dict] = []  # user_options of the servers already running
        self.start_errors: list[Exception | None] = []  # one per start_server call; None (or none left): started
        self.progress_events: list[dict] = list(READY)
        self.calls: list[tuple] = []
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.models: dict[str, dict] = {}  # user models the hub answers (warm pool servers)

    def _hub(self, *call) -> None:
        self.calls.append(call)
        if self.down:
            raise HubError(HUB_DOWN, retryable=False, status=503)

    def running_servers(self) -> list[dict]:
        self._hub("running_servers")
        return self.running

    def user(self, name: str) -> dict | None:
        self._hub("user", name)
        return self.models.get(name)

    def create_user(self, name: str) -> None:
        self._hub("create_user", name)
        self.created.append(name)

    def new_server_token(self, name: str) -> dict:
        self._hub("new_server_token", name)
        return {"token": f"token-of-{name}", "id": "a1"}

    def start_server(self, name: str, user_options: dict) -> None:
        self._hub("start_server", name, user_options)
        error = self.start_errors.pop(0) if self.start_errors else None
        if error is not None:
            raise error

    def progress(self, name: str, deadline: float, server: str = ""):
        self._hub("progress", name)
        yield from self.progress_events

    def delete_user(self, name: str) -> None:  # best effort, never raises (as HubClient.delete_user)
        self.calls.append(("delete_user", name))
        self.deleted.append(name)


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(launch, "HubClient", lambda settings, session=None: fake)
    return fake


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(launch.time, "sleep", delays.append)
    return delays


def settings(tmp_path, **overrides) -> Settings:
    values = {
        "state_dir": str(tmp_path),
        "public_url": "https://binder.example.org",
        "binder_launch_host": "https://binder.example.org/",
        "launch_retries": 4,
        "total_quota": 0,
        "per_repo_quota": 0,
    }
    return Settings(**{**values, **overrides})


def run(s: Settings, image: str = "bltest-img:1", retry_delay: float = 0.5) -> list[dict]:
    return list(launch.launch(s, fake_resolved(NAME), image, retry_delay=retry_delay))


def retryable(message: str = "Starting the server failed: boom", status: int = 500) -> HubError:
    return HubError(message, retryable=True, status=status)


# ---- a launch that works ---------------------------------------------------------------------
def test_ready_carries_the_server_url_token_and_binder_fields(tmp_path, hub, sleeps):
    events = run(settings(tmp_path))
    (user,) = hub.created
    assert events[:3] == [
        {"phase": "launching", "message": "Launching server...\n"},
        {"phase": "launching", "message": "Spawning server...\n"},
        {"phase": "launching", "message": "ready\n"},
    ]
    url = f"https://binder.example.org/user/{user}/"
    assert events[-1] == {
        "phase": "ready",
        "message": f"server running at {url}\n",
        "url": url,
        "token": f"token-of-{user}",
        "image": "bltest-img:1",
        "repo_url": REPO_URL,
        "binder_ref_url": fake_resolved(NAME).ref_url,
        "binder_launch_host": "https://binder.example.org/",
        "binder_request": "v2/git/bltest/r1/HEAD",
        "binder_persistent_request": f"v2/git/bltest/r1/{'0' * 40}",
    }
    assert len(events) == 4
    assert user.startswith("bltest-r1-") and len(user) == len("bltest-r1-") + 8
    (started,) = [call for call in hub.calls if call[0] == "start_server"]
    assert started[2] == {k: v for k, v in events[-1].items() if k not in ("phase", "message", "url", "token")}
    assert hub.deleted == [] and sleeps == []


# ---- retries ----------------------------------------------------------------------------------
def test_retryable_errors_are_retried_with_doubling_delays_then_ready(tmp_path, hub, sleeps):
    hub.start_errors = [retryable(), retryable(status=503), retryable("Starting the server failed: busy", 429)]
    events = run(settings(tmp_path, launch_retries=4), retry_delay=0.5)
    assert events[-1]["phase"] == "ready"
    assert sleeps == [0.5, 1.0, 2.0]
    retries = [ev["message"] for ev in events if ev["message"].startswith("Launch attempt")]
    assert retries == [
        "Launch attempt 1 failed (Starting the server failed: boom), retrying in 0.5 s...\n",
        "Launch attempt 2 failed (Starting the server failed: boom), retrying in 1 s...\n",
        "Launch attempt 3 failed (Starting the server failed: busy), retrying in 2 s...\n",
    ]
    assert len(set(hub.created)) == 4, "a new temporary user for every attempt"
    assert hub.deleted == hub.created[:3], "each failed attempt's user is deleted, the running one kept"
    assert events[-1]["url"].endswith(f"/user/{hub.created[-1]}/")


def test_retries_stop_after_launch_retries_attempts(tmp_path, hub, sleeps):
    hub.start_errors = [retryable()] * 10
    events = run(settings(tmp_path, launch_retries=3), retry_delay=1)
    assert events[-1] == {"phase": "failed", "status_code": 500, "message": "Starting the server failed: boom\n"}
    assert sleeps == [1, 2], "no wait after the last attempt"
    assert len(hub.created) == 3 and hub.deleted == hub.created


def test_no_retry_when_the_next_wait_would_pass_the_launch_timeout(tmp_path, hub, sleeps):
    hub.start_errors = [retryable()] * 10
    events = run(settings(tmp_path, launch_retries=4, launch_timeout=3), retry_delay=2)
    assert sleeps == [2], "2 s fit in the 3 s timeout, then 4 s more do not"
    assert events[-1]["phase"] == "failed" and hub.deleted == hub.created and len(hub.created) == 2


@pytest.mark.parametrize(
    "error, status, message",
    [
        (HubError("Creating user x failed: Forbidden", retryable=False, status=403), 403, "Creating user x failed"),
        (HubError("Starting the server failed: no such image", retryable=False, status=400), 400, "no such image"),
        (KeyError("token"), 500, "Unexpected error while launching: KeyError('token')"),
    ],
)
def test_errors_that_retrying_cannot_help_fail_at_once(tmp_path, hub, sleeps, error, status, message):
    hub.start_errors = [error]
    events = run(settings(tmp_path))
    assert events[-1]["phase"] == "failed" and events[-1]["status_code"] == status
    assert message in events[-1]["message"] and events[-1]["message"].endswith("\n")
    assert sleeps == [] and len(hub.created) == 1 and hub.deleted == hub.created


def test_a_server_that_fails_to_start_ends_failed_with_its_reason_and_no_user_left(tmp_path, hub, sleeps):
    hub.progress_events = [{"progress": 50, "message": "Spawning"}, {"failed": True, "message": "exit code 1"}]
    events = run(settings(tmp_path))
    assert events[-1]["phase"] == "failed"
    assert events[-1]["message"] == "Server failed to start: exit code 1\n"
    assert hub.created and hub.deleted == hub.created


def test_launch_timeout_is_504_at_once(tmp_path, hub, sleeps):
    hub.progress_events = [{"progress": 50, "message": "Spawning"}]  # the hub's stream ends at the deadline
    events = run(settings(tmp_path))
    assert events[-1] == {
        "phase": "failed",
        "status_code": 504,
        "message": "Launch timed out: the server did not become ready in time.\n",
    }
    assert sleeps == [] and len(hub.created) == 1 and hub.deleted == hub.created


# ---- the consumer goes away ---------------------------------------------------------------
def test_closing_the_stream_mid_launch_deletes_the_temporary_user(tmp_path, hub, sleeps):
    events = launch.launch(settings(tmp_path), fake_resolved(NAME), "bltest-img:1")
    assert next(events)["message"] == "Launching server...\n"
    assert next(events)["message"] == "Spawning server...\n"  # the server is starting
    (user,) = hub.created
    events.close()
    assert hub.deleted == [user]


def test_closing_the_stream_during_a_retry_wait_leaves_no_user(tmp_path, hub, sleeps):
    hub.start_errors = [retryable()]
    events = launch.launch(settings(tmp_path), fake_resolved(NAME), "bltest-img:1", retry_delay=0.5)
    seen = [next(events), next(events)]
    assert seen[-1]["message"].startswith("Launch attempt 1 failed")
    events.close()
    assert len(hub.created) == 1 and hub.deleted == hub.created


def test_closing_before_anything_started_creates_nothing(tmp_path, hub):
    events = launch.launch(settings(tmp_path), fake_resolved(NAME), "bltest-img:1")
    next(events)
    events.close()
    assert hub.calls == []


# ---- quotas ----------------------------------------------------------------------------------
def test_total_quota_gives_binderhubs_message_and_429(tmp_path, hub, sleeps):
    hub.running = [{"repo_url": "https://example.org/a.git"}, {"repo_url": "https://example.org/b.git"}]
    events = run(settings(tmp_path, total_quota=2))
    assert events[-1] == {
        "phase": "failed",
        "status_code": 429,
        "message": "Too many users on this BinderHub! Try again soon.\n",
    }
    assert hub.created == []


def test_per_repo_quota_gives_binderhubs_message_and_429(tmp_path, hub, sleeps):
    hub.running = [{"repo_url": REPO_URL}, {"repo_url": "https://example.org/other.git"}]
    events = run(settings(tmp_path, per_repo_quota=1, total_quota=10))
    assert events[-1] == {
        "phase": "failed",
        "status_code": 429,
        "message": f"Too many users running {REPO_URL}! Try again soon.\n",
    }
    assert hub.created == []


def test_quotas_count_only_what_they_limit(tmp_path, hub, sleeps):
    hub.running = [{"repo_url": "https://example.org/other.git"}, {}]
    assert run(settings(tmp_path, per_repo_quota=1, total_quota=3))[-1]["phase"] == "ready"


def test_without_quotas_the_hub_is_not_asked_what_runs(tmp_path, hub, sleeps):
    hub.running = [{"repo_url": REPO_URL}] * 100
    assert run(settings(tmp_path, total_quota=0, per_repo_quota=0))[-1]["phase"] == "ready"
    assert ("running_servers",) not in hub.calls


def test_a_launch_waiting_on_the_hub_does_not_lock_out_another_launch_of_the_same_process(tmp_path, monkeypatch):
    connect = sqlite3.connect
    monkeypatch.setattr(quotas.sqlite3, "connect", lambda *args, **kwargs: connect(*args, **{**kwargs, "timeout": 0.5}))
    s = settings(tmp_path, total_quota=10)
    happened: list[str] = []

    class HubThatSwitches:
        """While the first launch waits for the hub, the worker runs the second launch (gevent's cooperative switch)."""

        switched = False

        def running_servers(self) -> list[dict]:
            if not self.switched:
                self.switched = True
                try:
                    with quotas.slot(s, self, REPO_URL):
                        happened.append("second launch counted")
                except sqlite3.OperationalError as exc:
                    happened.append(f"second launch failed: {exc}")
            return []

    with quotas.slot(s, HubThatSwitches(), REPO_URL):
        happened.append("first launch counted")
    assert happened == ["second launch counted", "first launch counted"]


# ---- the hub is down ----------------------------------------------------------------------
@pytest.mark.parametrize("quotas", [{"total_quota": 64}, {"per_repo_quota": 2}, {}], ids=["total", "per-repo", "none"])
def test_hub_down_gives_failed_503_at_once(tmp_path, hub, sleeps, quotas):
    hub.down = True
    events = run(settings(tmp_path, **quotas))
    assert events == [
        {"phase": "launching", "message": "Launching server...\n"},
        {"phase": "failed", "status_code": 503, "message": HUB_DOWN + "\n"},
    ]
    assert hub.created == [] and sleeps == []


def test_temporary_user_names_follow_binderhub():
    assert launch.username_for("https://github.com/Org/My_Repo.git")[:-8] == "org-my-repo-"
    long = launch.username_for("https://example.org/" + "a" * 20 + "/" + "b" * 30)
    assert long[:-9] == "a" * 15 + "-" + "b" * 16 and len(long) == 32 + 9
    assert launch.username_for("https://example.org/")[:-8] == "binder-"
    assert launch.username_for("example.org/x/y")[:-8] == "x-y-"
    assert launch.username_for(REPO_URL) != launch.username_for(REPO_URL), "8 random characters"


def test_the_deadline_starts_with_the_launch(tmp_path, hub, monkeypatch):
    seen: list[float] = []
    original = FakeHub.progress

    def progress(self, name, deadline, server=""):
        seen.append(deadline - time.monotonic())
        return original(self, name, deadline)

    monkeypatch.setattr(FakeHub, "progress", progress)
    run(settings(tmp_path, launch_timeout=120))
    assert 119 < seen[0] <= 120


# ---- the warm pool ------------------------------------------------------------------------------
@pytest.fixture
def warm(monkeypatch, hub):
    """A pool with one ready server of bltest-img:1 (image id sha256:a); the fake hub knows its user."""
    from binderlite.launch import pool

    monkeypatch.setattr(pool, "image_id", lambda settings, image: "sha256:a" if image == "bltest-img:1" else None)
    hub.models["pool-r1-abc123"] = {"servers": {"": {"ready": True, "pending": None}}}
    return pool


def test_a_ready_pooled_server_is_handed_out_without_spawning(tmp_path, hub, warm):
    s = settings(tmp_path)
    warm.add(s, "pool-r1-abc123", "bltest-img:1", "sha256:a")
    warm.mark_ready(s, "pool-r1-abc123")
    events = run(s)
    url = "https://binder.example.org/user/pool-r1-abc123/"
    assert events[0] == {"phase": "launching", "message": "Launching server...\n"}
    assert events[1]["phase"] == "ready" and len(events) == 2, "no spawn progress"
    assert events[1]["url"] == url and events[1]["token"] == "token-of-pool-r1-abc123"
    assert events[1]["repo_url"] == REPO_URL and events[1]["image"] == "bltest-img:1"
    assert hub.created == [] and not [c for c in hub.calls if c[0] == "start_server"]
    # the next launch finds the pool empty and spawns
    assert run(s)[-1]["url"] != url and len(hub.created) == 1


def test_a_pooled_server_that_died_is_dropped_and_the_launch_spawns(tmp_path, hub, warm):
    s = settings(tmp_path)
    warm.add(s, "pool-r1-abc123", "bltest-img:1", "sha256:a")
    warm.mark_ready(s, "pool-r1-abc123")
    hub.models["pool-r1-abc123"]["servers"] = {}
    events = run(s)
    assert events[-1]["phase"] == "ready" and events[-1]["url"].endswith(f"/user/{hub.created[0]}/")
    assert hub.deleted[0] == "pool-r1-abc123" and warm.entries(s) == []


def test_a_pooled_server_of_an_older_build_is_not_handed_out(tmp_path, hub, warm):
    s = settings(tmp_path)
    warm.add(s, "pool-r1-abc123", "bltest-img:1", "sha256:old")
    warm.mark_ready(s, "pool-r1-abc123")
    assert run(s)[-1]["url"].endswith(f"/user/{hub.created[0]}/")
