"""The launch event log: BinderHub's launch schema (v6), failures with a reason, rotation across processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from binderlite.observe import eventlog
from binderlite.settings import Settings
from tests.helpers.launchlog import ENVELOPE, SCHEMA, lines, validate
from tests.unit import test_web
from tests.unit.test_web import STREAM, events

app, client, fake_pipeline = test_web.app, test_web.client, test_web.fake_pipeline  # the web app's fixtures


def record(settings: Settings, **fields) -> None:
    base = dict(provider="gh", spec="org/repo/HEAD", ref="a" * 40, status="success", origin="h:8585", request_origin="")
    eventlog.record_launch(settings, **{**base, **fields})


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(state_dir=str(tmp_path))


def test_a_success_is_binderhubs_line(settings):
    record(settings, request_origin="same-origin")
    [line] = lines(settings.logs_dir / "launches.jsonl")
    validate(line)
    assert list(line) == [*ENVELOPE, "provider", "spec", "ref", "status", "build_token", "origin", "request_origin"]
    assert line["provider"] == "GitHub" and line["spec"] == "org/repo/HEAD" and line["ref"] == "a" * 40
    assert line["status"] == "success" and line["build_token"] is False
    assert line["origin"] == "h:8585" and line["request_origin"] == "same-origin"


@pytest.mark.parametrize("name, binderhub_name", sorted(eventlog.PROVIDER_NAMES.items()))
def test_every_provider_has_binderhubs_name(settings, name, binderhub_name):
    record(settings, provider=name)
    [line] = lines(settings.logs_dir / "launches.jsonl")
    validate(line)
    assert line["provider"] == binderhub_name


def test_every_link_kind_binderlite_serves_is_mapped():
    from binderlite.links.registry import PROVIDERS

    assert set(PROVIDERS) == set(eventlog.PROVIDER_NAMES)
    assert set(eventlog.PROVIDER_NAMES.values()) <= set(SCHEMA["properties"]["provider"]["enum"])


def test_a_failure_carries_its_reason_and_still_validates(settings):
    record(settings, status="failure", ref="", reason="Could not resolve ref for gh:org/repo/nope.")
    record(settings, provider="nosuch", spec="x/y", status="failure", ref="", reason="Unknown provider 'nosuch'")
    failure, unknown = lines(settings.logs_dir / "launches.jsonl")
    for line in (failure, unknown):
        validate(line)
        assert line["status"] == "failure"
    assert failure["reason"] == "Could not resolve ref for gh:org/repo/nope." and failure["ref"] == ""
    assert "provider" not in unknown and unknown["reason"] == "Unknown provider 'nosuch'"


def test_no_credential_reaches_a_line(settings):
    record(
        settings,
        provider="git",
        spec="https%3A%2F%2Fuser%3As3cret%40example.org%2Frepo.git/main",
        status="failure",
        reason="https://user:s3cret@example.org/repo.git has credentials in it",
        request_origin="https://u:s3cret@evil.example",
    )
    text = (settings.logs_dir / "launches.jsonl").read_text()
    assert "s3cret" not in text and "[redacted]" in text
    validate(json.loads(text))


def test_private_launches_are_marked_and_the_file_is_private(settings):
    record(settings, private=True)
    path = settings.logs_dir / "launches.jsonl"
    [line] = lines(path)
    validate(line)
    assert line["private"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unwritable_log_does_not_break_the_launch(settings, caplog):
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / "launches.jsonl").mkdir()  # not a file: every open fails
    record(settings)
    assert "Could not write the launch event log" in caplog.text


def _writer(state_dir: str, name: str, count: int, start) -> None:
    settings = Settings(state_dir=state_dir, event_log_max_bytes=4096, event_log_backups=int(os.environ["BACKUPS"]))
    start.wait()
    for i in range(count):
        record(settings, spec=f"org/{name}/{i}")


def write_concurrently(tmp_path: Path, backups: int, monkeypatch) -> Path:
    """Two processes write 1000 lines each at once into a log that rotates every ~14 lines."""
    monkeypatch.setenv("BACKUPS", str(backups))
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), name, 1000, start)) for name in ("a", "b")]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    return tmp_path / "logs"


def test_two_processes_rotating_lose_no_line(tmp_path, monkeypatch):
    logs = write_concurrently(tmp_path, backups=200, monkeypatch=monkeypatch)
    files = sorted(p.name for p in logs.glob("launches.jsonl*") if not p.name.endswith(".lock"))
    assert 100 < len(files) <= 201, f"{len(files)} files: it rotated many times, never past the backups"
    specs = [line["spec"] for name in files for line in lines(logs / name)]
    assert sorted(specs) == sorted(f"org/{w}/{i}" for w in "ab" for i in range(1000))
    for name in files:
        assert (logs / name).stat().st_size <= 4096, f"{name} grew past event_log_max_bytes"


def test_two_processes_rotating_keep_only_the_backups(tmp_path, monkeypatch):
    logs = write_concurrently(tmp_path, backups=3, monkeypatch=monkeypatch)
    files = sorted(p.name for p in logs.glob("launches.jsonl*") if not p.name.endswith(".lock"))
    assert files == ["launches.jsonl", "launches.jsonl.1", "launches.jsonl.2", "launches.jsonl.3"]
    kept = [line for name in files for line in lines(logs / name)]  # every line whole, every line valid
    for line in kept:
        validate(line)
    specs = {line["spec"] for line in kept}
    assert specs & {"org/a/999", "org/b/999"}, "the last line written is kept"
    for writer in "ab":  # what is kept is a window of time: each writer's lines in it, none missing
        numbers = sorted(int(spec.split("/")[2]) for spec in specs if spec.startswith(f"org/{writer}/"))
        if numbers:
            assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"a line of {writer} is missing"


# ---- through the web app: where a launch ends, one line ------------------------------------------------------


def test_the_build_api_logs_a_ready_launch(client, fake_pipeline, app):
    client.get("/build/gh/org/repo/HEAD", headers={**STREAM, "Origin": "https://site.example"}).get_data()
    [line] = lines(app.extensions["binderlite"].logs_dir / "launches.jsonl")
    validate(line)
    assert (line["provider"], line["spec"], line["ref"], line["status"]) == (
        "GitHub",
        "org/repo/HEAD",
        "a" * 40,
        "success",
    )
    assert line["origin"] == "localhost" and line["request_origin"] == "https://site.example"


def test_the_build_api_logs_failures_and_refusals_but_not_build_only(client, fake_pipeline, app, monkeypatch):
    from binderlite.builds import pipeline
    from binderlite.events import Event

    client.get("/build/gh/org/repo/HEAD?build_only=true", headers=STREAM).get_data()
    client.get("/build/gh/evil/repo/HEAD", headers={**STREAM, "Sec-Fetch-Site": "same-origin"}).get_data()

    def failing(settings, resolved):
        yield Event.failed("pip exploded")

    monkeypatch.setattr(pipeline, "build_events", failing)
    evs = events(client.get("/build/gh/org/repo/HEAD", headers=STREAM))
    assert evs[-1]["phase"] == "failed"
    banned, failed = lines(app.extensions["binderlite"].logs_dir / "launches.jsonl")
    for line in (banned, failed):
        validate(line)
        assert line["status"] == "failure"
    assert banned["spec"] == "evil/repo/HEAD" and banned["ref"] == "" and banned["request_origin"] == "same-origin"
    assert "not allowed to launch" in banned["reason"]
    assert failed["ref"] == "a" * 40 and failed["reason"] == "pip exploded" and failed["request_origin"] == ""
