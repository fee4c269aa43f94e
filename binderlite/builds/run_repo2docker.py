"""Run repo2docker on a fetched, checked checkout and print its progress as JSON event lines.

This runs as its own process (``python -m binderlite.builds.run_repo2docker``) in its own
process group, so the build worker can stop it on timeout. The source is
always a local folder that ``binderlite.builds.fetch`` made in the sandbox (or
a local directory the CLI named): repo2docker's own content providers, which
would fetch on the host as root, are never used here. binderlite's build
packs build with ``engine.LimitedDockerEngine`` (limits on every step); the
stock build packs (``build_packs = "repo2docker"``) need BuildKit and keep
repo2docker's own engine, without those limits.
"""

from __future__ import annotations

import json
import logging
import sys

from repo2docker import contentproviders
from repo2docker.app import Repo2Docker

from binderlite.builds.buildpacks import buildpack_classes
from binderlite.builds.buildpacks.python import NB_UID, NB_USER
from binderlite.builds.engine import BuildLimits, LimitedDockerEngine
from binderlite.errors import BinderliteError
from binderlite.events import Event, Phase
from binderlite.settings import Settings, load_settings, proxy_environment


class EventLineHandler(logging.Handler):
    """repo2docker log records → one JSON event per line on stdout; warnings are marked as such."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        phase = getattr(record, "phase", None)
        if record.levelno >= logging.WARNING and not phase:
            ev = Event.warning(message)
        else:
            ev = Event.of(Phase(str(getattr(phase, "value", phase))) if phase else None, message)
        sys.stdout.write(json.dumps(ev) + "\n")
        sys.stdout.flush()


def proxy_build_args(settings: Settings) -> dict[str, str]:
    """Proxy settings as Docker's predefined build args (never stored in the image)."""
    return proxy_environment(settings)


class LimitedRepo2Docker(Repo2Docker):
    """repo2docker whose builds run with binderlite's limits (see ``engine``)."""

    limits: BuildLimits

    def get_engine(self) -> LimitedDockerEngine:
        engine = LimitedDockerEngine(parent=self)
        engine.limits = self.limits
        return engine


def run_repo2docker(settings: Settings, source: str, repo_url: str, ref: str, image: str) -> None:
    """Build ``image`` from the checkout ``source`` of ``repo_url`` at ``ref``; raises on failure."""
    if settings.build_packs == "binderlite":
        r2d = LimitedRepo2Docker()
        r2d.limits = BuildLimits.from_settings(settings)
    else:
        r2d = Repo2Docker()
    r2d.repo = source
    r2d.ref = None
    r2d.labels = {"repo2docker.repo": repo_url, "repo2docker.ref": ref or ""}
    r2d.output_image_spec = image
    r2d.json_logs = True
    r2d.user_id = NB_UID
    r2d.user_name = NB_USER
    r2d.base_image = settings.base_image
    r2d.buildpacks = buildpack_classes(settings)
    r2d.content_providers = [contentproviders.Local]
    r2d.extra_build_args = proxy_build_args(settings)
    r2d.run = False
    r2d.push = False
    r2d.cleanup_checkout = False  # the build worker removes the checkout
    r2d.initialize()
    r2d_log = logging.getLogger("repo2docker")
    r2d_log.handlers = [EventLineHandler()]
    r2d_log.propagate = False
    sys.excepthook = sys.__excepthook__
    r2d.build()


def main(argv: list[str]) -> int:
    """Entry point: ``python -m binderlite.builds.run_repo2docker <checkout> <repo url> <ref> <image>``."""
    settings = load_settings()
    source, repo_url, ref, image = argv
    try:
        run_repo2docker(settings, source, repo_url, ref, image)
    except SystemExit as exc:
        return int(exc.code or 1)
    except BinderliteError as exc:
        sys.stdout.write(json.dumps(Event.failed(exc.message, exc.status)) + "\n")
        return 1
    except Exception as exc:  # every failure becomes a failed event in words, never a traceback or a repr
        sys.stdout.write(
            json.dumps(Event.failed(str(exc) or f"repo2docker stopped ({exc.__class__.__name__}).")) + "\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
