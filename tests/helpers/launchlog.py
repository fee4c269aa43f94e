"""The launch event log as a reader sees it: its lines, checked against BinderHub's launch schema (v6)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import jsonschema

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "binderhub-launch-v6.json").read_text())
ENVELOPE = ("timestamp", "schema", "version")


def validate(line: dict) -> None:
    """As BinderHub: the event's fields against the schema, then the envelope it adds around them."""
    jsonschema.validate({k: v for k, v in line.items() if k not in ENVELOPE}, SCHEMA)
    jsonschema.validate(line, SCHEMA)
    assert line["schema"] == SCHEMA["$id"] and line["version"] == SCHEMA["version"] == 6
    datetime.datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")


def lines(path: Path) -> list[dict]:
    """Every line of a launch event log file, parsed (a torn line fails here)."""
    return [json.loads(text) for text in path.read_text().splitlines()]
