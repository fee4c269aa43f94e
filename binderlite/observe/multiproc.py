"""prometheus-client's multiprocess mode: one folder of counts shared by every binderlite process.

gunicorn's workers, the detached build workers and the scheduler each write
their own files under ``<run_dir>/metrics``; ``/metrics`` adds them up
(``MultiProcessCollector``). The service table puts ``PROMETHEUS_MULTIPROC_DIR``
in the environment of the web app and the scheduler (build workers inherit
it); ``binderlite prepare`` empties the folder when no service runs yet, and
a process that ends has its live gauges removed (``process_exited``). Without
the variable (unit tests, the CLI) metrics stay in the process's own registry.

gunicorn's master imports this module (``child_exit``) before gevent patches
its workers, so prometheus-client is imported only inside ``registry``: its
module-level lock, made unpatched in the master, would stall a worker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from binderlite.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

ENV = "PROMETHEUS_MULTIPROC_DIR"
LIVE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent")  # prometheus-client's live gauges


def metrics_dir(settings: Settings) -> Path:
    """The shared folder: ``<run_dir>/metrics``."""
    return settings.run_dir / "metrics"


def environment(settings: Settings) -> dict[str, str]:
    """The variable a service needs to count into the shared folder."""
    return {ENV: str(metrics_dir(settings))}


def shared_dir() -> Path | None:
    """The folder this process counts into, or None (in-process registry)."""
    value = os.environ.get(ENV) or os.environ.get(ENV.lower())
    return Path(value) if value else None


def ensure_dir() -> None:
    """Make the shared folder if this process counts into one (prometheus-client needs it to exist)."""
    folder = shared_dir()
    if folder is not None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def reset(settings: Settings) -> Path:
    """Start from zero: remove the counts of an earlier run and make the folder again."""
    folder = metrics_dir(settings)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    return folder


def process_exited(pid: int | None) -> None:
    """Drop a finished process's live gauges (in-progress counts); its counters and histograms stay.

    What ``prometheus_client.multiprocess.mark_process_dead`` does, without importing it (see above).
    """
    folder = shared_dir()
    if not pid or folder is None:
        return
    for mode in LIVE_MODES:
        (folder / f"gauge_{mode}_{pid}.db").unlink(missing_ok=True)


def registry() -> CollectorRegistry:
    """What ``/metrics`` shows: every process's counts in multiprocess mode, else this process's."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if shared_dir() is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected
