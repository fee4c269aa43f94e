"""The build queue's state machine on a temp state dir; no worker process is ever started.

``BuildQueue._start_worker`` (the one place a process starts) is replaced by a
recorder. Rows are read through the queue's public API; where a test needs a
worker's pid or start time, it writes the build table as a worker would.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from binderlite.builds import queue as queue_module
from binderlite.builds.queue import DISPATCH_GRACE, BuildQueue, pid_alive
from binderlite.events import Event
from binderlite.settings import Settings

REPO = "https://example.org/a/b.git"


@pytest.fixture
def started(monkeypatch) -> list[str]:
    """Ids of the builds a worker would have been started for."""
    ids: list[str] = []
    monkeypatch.setattr(BuildQueue, "_start_worker", lambda self, build_id: ids.append(build_id))
    return ids


def make_queue(tmp_path, concurrency: int = 2) -> BuildQueue:
    return BuildQueue(Settings(state_dir=str(tmp_path), build_concurrency=concurrency))


def request(queue: BuildQueue, image: str):
    return queue.request(image, REPO, "a" * 40, "git")


def running_build(tmp_path):
    """A queue with one build of ``img:1``, dispatched (its worker not started)."""
    queue = make_queue(tmp_path)
    build, _ = request(queue, "img:1")
    queue.dispatch()
    return queue, build


def set_row(queue: BuildQueue, build_id: str, **columns) -> None:
    """Write a build's columns as its worker would (pid, started)."""
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with sqlite3.connect(queue.settings.db_path) as db:
        db.execute(f"UPDATE builds SET {assignments} WHERE id = ?", (*columns.values(), build_id))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def phases(events) -> list[str | None]:
    return [ev.get("phase") if ev else None for ev in events]


# ---- requests -------------------------------------------------------------------------------
def test_asking_for_an_image_being_built_attaches_to_that_build(tmp_path, started):
    queue = make_queue(tmp_path)
    first, new = request(queue, "img:1")
    again, new_again = request(queue, "img:1")
    other, other_new = request(queue, "img:2")
    assert new and not new_again and other_new
    assert again.id == first.id and other.id != first.id
    assert (first.state, first.image, first.repo_url, first.content_provider) == ("queued", "img:1", REPO, "git")
    assert list(queue.log(first.id)) == [{"phase": "waiting", "message": "Waiting for build to start...\n"}]
    queue.dispatch()
    running, _ = request(queue, "img:1")
    assert running.id == first.id and running.state == "running", "a running build is attached to as well"


def test_a_finished_build_is_not_attached_to(tmp_path, started):
    queue, first = running_build(tmp_path)
    queue.finish(first.id, "failed", "Build failed: no.\n")
    second, new = request(queue, "img:1")
    assert new and second.id != first.id and second.state == "queued"


# ---- states -------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_queued_then_running_then_its_outcome(tmp_path, started, outcome):
    queue = make_queue(tmp_path)
    build, _ = request(queue, "img:1")
    assert queue.active_images() == {"img:1"}
    assert queue.dispatch() == [build.id] and started == [build.id]
    running = queue.get(build.id)
    assert running.state == "running" and running.started is not None and running.finished is None
    queue.finish(build.id, outcome, "done\n")
    done = queue.get(build.id)
    assert (done.state, done.message) == (outcome, "done\n") and done.finished >= done.started
    assert queue.active_images() == set()
    queue.finish(build.id, "failed", "too late\n")
    assert queue.get(build.id).state == outcome, "a finished build keeps its outcome"


def test_unknown_build_is_none(tmp_path):
    assert make_queue(tmp_path).get("nope") is None


def test_dispatch_starts_at_most_build_concurrency_builds_oldest_first(tmp_path, started):
    queue = make_queue(tmp_path, concurrency=2)
    builds = [request(queue, f"img:{i}")[0] for i in range(3)]
    assert queue.dispatch() == [builds[0].id, builds[1].id]
    assert queue.dispatch() == [], "no room while two run"
    assert queue.get(builds[2].id).state == "queued"
    queue.finish(builds[0].id, "succeeded", "ok\n")
    assert queue.dispatch() == [builds[2].id]
    assert started == [b.id for b in builds], "one worker per build, never two"


def test_queue_position_counts_queued_builds_ahead(tmp_path, started):
    queue = make_queue(tmp_path, concurrency=1)
    builds = [request(queue, f"img:{i}")[0] for i in range(4)]
    assert [queue.queue_position(b) for b in builds] == [1, 2, 3, 4]
    queue.dispatch()
    builds = [queue.get(b.id) for b in builds]
    assert [queue.queue_position(b) for b in builds] == [0, 1, 2, 3], "a running build has no position"


# ---- dead workers ---------------------------------------------------------------------------
def test_reap_fails_a_running_build_whose_worker_is_gone(tmp_path, started):
    queue = make_queue(tmp_path, concurrency=3)
    gone, alive, starting = (request(queue, f"img:{i}")[0] for i in range(3))
    queue.dispatch()
    set_row(queue, gone.id, pid=dead_pid())
    set_row(queue, alive.id, pid=os.getpid())
    # ``starting`` has no pid yet and was claimed just now: its worker may still be starting
    assert queue.reap() == [gone.id]
    failed = queue.get(gone.id)
    assert failed.state == "failed" and "stopped unexpectedly" in failed.message
    assert list(queue.log(gone.id))[-1] == {"phase": "failed", "message": failed.message}
    assert queue.get(alive.id).state == queue.get(starting.id).state == "running"
    assert queue.reap() == [], "reaped once"


def test_reap_fails_a_build_claimed_long_ago_that_never_got_a_worker(tmp_path, started):
    queue, build = running_build(tmp_path)
    set_row(queue, build.id, started=time.time() - DISPATCH_GRACE - 1)
    assert queue.reap() == [build.id]


def test_dispatch_reaps_first_so_a_dead_build_frees_its_slot(tmp_path, started):
    queue = make_queue(tmp_path, concurrency=1)
    first, second = (request(queue, f"img:{i}")[0] for i in range(2))
    queue.dispatch()
    set_row(queue, first.id, pid=dead_pid())
    assert queue.dispatch() == [second.id]
    assert queue.get(first.id).state == "failed"


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)
    assert not pid_alive(dead_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while pid_alive(zombie.pid) and time.monotonic() < deadline:  # exited, not yet waited for: a zombie
        time.sleep(0.01)
    assert not pid_alive(zombie.pid)
    zombie.wait()


# ---- following a build ----------------------------------------------------------------------
@pytest.mark.parametrize("last", [Event.built("img:1", "Built image"), Event.failed("no")])
def test_follow_yields_the_log_from_the_start_and_ends_on_built_or_failed(tmp_path, started, last):
    queue, build = running_build(tmp_path)
    log = queue.log(build.id)
    log.append(Event.log("Step 1\n"))
    log.append(last)
    log.append(Event.log("never read\n"))
    assert list(queue.follow(build.id, poll=0.01)) == [
        {"phase": "waiting", "message": "Waiting for build to start...\n"},
        {"message": "Step 1\n"},
        last,
    ]


def test_follow_of_a_build_whose_worker_died_ends_failed(tmp_path, started):
    queue, build = running_build(tmp_path)
    set_row(queue, build.id, pid=dead_pid())
    events = list(queue.follow(build.id, poll=0.01))
    assert phases(events) == ["waiting", "failed"]
    assert "stopped unexpectedly" in events[-1]["message"]


def test_follow_of_a_build_that_ended_without_a_result_in_its_log_ends_failed(tmp_path, started):
    queue, build = running_build(tmp_path)
    queue.finish(build.id, "failed", "Build failed: the worker said so.\n")
    events = list(queue.follow(build.id, poll=0.01))
    assert events[-1] == {"phase": "failed", "message": "Build failed: the worker said so.\n"}


def test_follow_of_an_unknown_build_ends_failed(tmp_path):
    events = list(make_queue(tmp_path).follow("nope", poll=0.01))
    assert events == [{"phase": "failed", "message": "Build nope does not exist.\n"}]


def test_follow_of_a_queued_build_tells_its_position_once_and_dispatches(tmp_path, started):
    queue = make_queue(tmp_path, concurrency=1)
    running, _ = request(queue, "img:0")
    queue.dispatch()
    waiting, _ = request(queue, "img:1")
    follow = queue.follow(waiting.id, poll=0.01, idle_every=0.05)
    assert next(follow)["phase"] == "waiting"
    assert next(follow) == {
        "phase": "waiting",
        "message": "Build queued: position 1 in the queue.\n",
        "queue_position": 1,
    }
    assert next(follow) is None, "idle: a keepalive, not the position again"
    queue.finish(running.id, "succeeded", "ok\n")
    deadline = time.monotonic() + 5
    while queue.get(waiting.id).state == "queued" and time.monotonic() < deadline:
        next(follow)
    assert queue.get(waiting.id).state == "running" and started[-1] == waiting.id, "following dispatches"
    follow.close()


# ---- image use --------------------------------------------------------------------------------
def test_touch_image_records_the_last_use(tmp_path, monkeypatch):
    queue = make_queue(tmp_path)
    now = iter([100.0, 200.0, 300.0])
    monkeypatch.setattr(queue_module.time, "time", lambda: next(now))
    assert queue.image_last_used() == {}
    queue.touch_image("img:old")
    queue.touch_image("img:new")
    assert queue.image_last_used() == {"img:old": 100.0, "img:new": 200.0}
    queue.touch_image("img:old")
    assert queue.image_last_used() == {"img:old": 300.0, "img:new": 200.0}


def test_state_outlives_the_queue_object(tmp_path, started):
    build, _ = request(make_queue(tmp_path), "img:1")
    again, new = request(make_queue(tmp_path), "img:1")
    assert not new and again.id == build.id
