"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from tests.helpers.stages import RecordingStages


@pytest.fixture
def stages(monkeypatch) -> RecordingStages:
    """Build packs made from settings get a recorder instead of the Docker daemon for their shared stages."""
    recorder = RecordingStages()
    monkeypatch.setattr("binderlite.builds.buildpacks.DockerStageImages", lambda settings, say=None: recorder)
    return recorder
