"""The event type: BinderHub's phases, one constructor per shape, the wire format unchanged."""

import json

import pytest

from binderlite.events import Event, EventLog, Phase


def test_phases_are_binderhubs():
    assert [p.value for p in Phase] == [
        "waiting", "fetching", "building", "pushing", "built", "launching", "ready", "failed",
    ]  # fmt: skip


def test_constructors_make_the_wire_format():
    assert Event.waiting("Waiting for build to start...") == {
        "phase": "waiting",
        "message": "Waiting for build to start...\n",
    }
    assert Event.waiting("Build queued", 3) == {"phase": "waiting", "message": "Build queued\n", "queue_position": 3}
    assert Event.built("img:1", "Built image, launching...") == {
        "phase": "built",
        "imageName": "img:1",
        "message": "Built image, launching...\n",
    }
    assert Event.failed("boom\n\n", 429) == {"phase": "failed", "message": "boom\n", "status_code": 429}
    assert Event.log("plain\n") == {"message": "plain\n"}
    assert json.loads(json.dumps(Event.ready("up", url="u", token="t"))) == {
        "phase": "ready",
        "message": "up\n",
        "url": "u",
        "token": "t",
    }


@pytest.mark.parametrize(
    "ev, ends_build, ends_stream",
    [
        (Event.built("i", "m"), True, False),
        (Event.failed("m"), True, True),
        (Event.ready("m"), False, True),
        (Event.building("m"), False, False),
        (Event.log("m"), False, False),
    ],
)
def test_one_definition_of_the_end(ev, ends_build, ends_stream):
    assert (ev.ends_build, ev.ends_stream) == (ends_build, ends_stream)


@pytest.mark.parametrize("data", [{"phase": "unknown", "message": "x\n"}, {"phase": 7, "message": "x\n"}])
def test_a_phase_that_is_not_binderhubs_becomes_a_log_line(data):
    ev = Event.from_wire(data)
    assert ev.phase is None and "phase" not in ev and ev.message == "x\n"


@pytest.mark.parametrize("data", [[1, 2], "text", {"message": 5}, None])
def test_anything_else_becomes_a_log_line(data):
    ev = Event.from_wire(data)
    assert ev.phase is None and ev.message.endswith("\n")


def test_log_reads_back_what_was_appended_and_survives_garbage(tmp_path):
    log = EventLog(tmp_path / "b.jsonl")
    log.append(Event.waiting("w"))
    with open(log.path, "a") as fh:
        fh.write("not json\n")
    log.append(Event.built("img", "done"))
    events, offset = log.read_from(0)
    assert [e.phase for e in events] == [Phase.WAITING, None, Phase.BUILT]
    assert events[1].message == "not json\n"
    assert log.read_from(offset) == ([], offset)
    assert log.tail_text(2) == "not json\ndone"


def test_credentials_in_urls_are_redacted(tmp_path):
    log = EventLog(tmp_path / "b.jsonl")
    log.append(Event.log("Looking in indexes: https://user:s3cret@mirror.example/simple via http://tok@proxy:3128\n"))
    text = log.path.read_text()
    assert "s3cret" not in text and "tok@" not in text
    assert "https://***@mirror.example/simple" in text and "http://***@proxy:3128" in text


def test_a_log_stops_growing_but_keeps_phases_and_the_end(tmp_path, monkeypatch):
    from binderlite import events

    monkeypatch.setattr(events, "MAX_LOG_BYTES", 2000)
    log = EventLog(tmp_path / "b.jsonl")
    for i in range(200):
        log.append(Event.log(f"line {i} " + "x" * 50 + "\n"))
    log.append(Event.building("Step 9"))
    log.append(Event.failed("the reason"))
    assert log.path.stat().st_size < 4000
    evs = list(log)
    assert any("left out" in e.message for e in evs)
    assert [e.phase for e in evs if e.phase] == [Phase.BUILDING, Phase.FAILED]
    assert evs[-1].message == "the reason\n"


def test_a_reader_takes_at_most_a_chunk_at_a_time(tmp_path, monkeypatch):
    from binderlite import events

    monkeypatch.setattr(events, "READ_CHUNK", 100)
    log = EventLog(tmp_path / "b.jsonl")
    for i in range(20):
        log.append(Event.log(f"line {i}\n"))
    seen, offset = [], 0
    while True:
        batch, offset = log.read_from(offset)
        if not batch:
            break
        assert len(batch) < 20
        seen += batch
    assert [e.message for e in seen] == [f"line {i}\n" for i in range(20)]


def test_service_logs_are_rotated_in_place(tmp_path):
    from binderlite.scheduler.diskgc import rotate_service_logs
    from binderlite.settings import Settings

    settings = Settings(state_dir=str(tmp_path))
    settings.logs_dir.mkdir(parents=True)
    big, small = settings.logs_dir / "hub.log", settings.logs_dir / "proxy.log"
    big.write_text("x" * 300)
    small.write_text("y" * 10)
    with open(big, "a") as writer:  # a service keeps writing to its open log
        assert rotate_service_logs(settings, max_bytes=100) == [big]
        writer.write("after\n")
    assert (settings.logs_dir / "hub.log.1").read_text() == "x" * 300
    assert big.read_text() == "after\n" and small.read_text() == "y" * 10
