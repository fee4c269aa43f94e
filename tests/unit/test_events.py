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
