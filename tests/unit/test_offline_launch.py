"""scripts/lib/offline_launch.py: what the offline laptop check reports of a burst, a failure and the pool."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lib" / "offline_launch.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("offline_launch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percentiles_are_nearest_rank(script):
    values = [float(v) for v in range(1, 31)]  # 1..30
    assert script.percentile(values, 0.5) == 15
    assert script.percentile(values, 0.95) == 29
    assert script.percentile([4.0], 0.95) == 4
    assert script.percentile([], 0.5) == 0


def test_a_burst_passes_only_when_every_launch_is_ready_on_the_first_try(script):
    pooled = [{"phase": "ready", "seconds": 0.4, "pooled": True} for _ in range(10)]
    spawned = [{"phase": "ready", "seconds": 8.0 + i} for i in range(20)]
    ok, line = script.summarize_burst(pooled + spawned, 30)
    assert ok
    assert "30/30 ready, 0 retried" in line and "10 from the warm pool (10 ready in < 1 s)" in line
    assert "p50 12.0 s" in line and "p95 26.0 s" in line

    retried = pooled + spawned[:-1] + [{"phase": "ready", "seconds": 30.0, "retried": True}]
    assert script.summarize_burst(retried, 30)[0] is False
    failed = pooled + spawned[:-1] + [{"phase": "failed"}]
    ok, line = script.summarize_burst(failed, 30)
    assert not ok and "29/30 ready" in line


def test_a_launch_that_needed_a_second_attempt_is_seen_in_its_events(script, monkeypatch):
    events = [
        {"phase": "launching", "message": "Launch attempt 1 failed (hub busy), retrying in 1 s...\n"},
        {"phase": "ready", "message": "server running at http://127.0.0.2:8000/user/x/", "url": "u", "token": "t"},
    ]
    monkeypatch.setattr(script, "build_events", lambda base, link: events)
    monkeypatch.setattr(script, "run_code", _answer("2"))
    assert script.burst("http://127.0.0.2:8585", "git/x/main", 2, 1, "1+1") is False


def test_a_burst_of_pooled_servers_whose_kernels_answer_passes(script, monkeypatch, capsys):
    final = {"phase": "ready", "message": "server running at u (from the warm pool)", "url": "u", "token": "t"}
    monkeypatch.setattr(script, "build_events", lambda base, link: [final])
    monkeypatch.setattr(script, "run_code", _answer("2"))
    assert script.burst("http://127.0.0.2:8585", "git/x/main", 4, 2, "1+1") is True
    out = capsys.readouterr().out
    assert "4/4 ready, 0 retried" in out and "4 from the warm pool" in out and "2/2 answered 2" in out


def test_an_expected_failure_must_name_every_text_in_time(script, monkeypatch, capsys):
    failed = {"phase": "failed", "message": "more-itertools: the workshop's package mirror lacks it (...)"}
    monkeypatch.setattr(script, "build_events", lambda base, link, deadline: [failed])
    assert script.expect_failure("b", "git/x/main", ["more-itertools", "package mirror"], 60)
    assert not script.expect_failure("b", "git/x/main", ["six"], 60)
    assert "not named: ['six']" in capsys.readouterr().out
    monkeypatch.setattr(script, "build_events", lambda base, link, deadline: [{"phase": "ready", "message": ""}])
    assert not script.expect_failure("b", "git/x/main", ["more-itertools"], 60)


def test_the_pool_counts_ready_servers_and_zero_before_its_table_exists(script, tmp_path):
    db = tmp_path / "pool.sqlite"
    assert script.pool_ready(str(db)) == 0
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE pool (user TEXT, state TEXT)")
        conn.executemany("INSERT INTO pool VALUES (?, ?)", [("a", "ready"), ("b", "starting"), ("c", "ready")])
    assert script.pool_ready(str(db)) == 2
    assert script.wait_pool(str(db), 2, 1)
    assert not script.wait_pool(str(db), 3, 0)


def _answer(text: str):
    async def run_code(url, token, code):
        return text

    return run_code


def test_a_burst_that_took_fewer_servers_from_the_pool_than_it_held_fails(script):
    pooled = [{"phase": "ready", "seconds": 0.2, "pooled": True} for _ in range(9)]
    spawned = [{"phase": "ready", "seconds": 30.0} for _ in range(21)]
    assert script.summarize_burst(pooled + spawned, 30, min_pooled=10)[0] is False
    assert script.summarize_burst(pooled + spawned, 30, min_pooled=9)[0] is True
