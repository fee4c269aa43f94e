"""A stand-in for the shared stage images (builds/stages.py) in unit tests: records each stage, makes nothing."""

from __future__ import annotations

from binderlite.builds.stages import Stage


class RecordingStages:
    """Returns a made-up id per stage (``sha256:<kind>-stage-<key>``) and keeps the stages it was asked for."""

    def __init__(self) -> None:
        self.asked: list[Stage] = []

    def ensure(self, stage: Stage) -> str:
        self.asked.append(stage)
        return f"sha256:{stage.kind}-stage-{stage.key}"

    def dockerfile(self, kind: str) -> str:
        """The Dockerfile of the last stage of ``kind`` asked for."""
        return next(s.dockerfile for s in reversed(self.asked) if s.kind == kind)
