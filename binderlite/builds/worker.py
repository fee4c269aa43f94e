"""One build, supervised: fetch in the sandbox, run repo2docker, enforce the timeout, push, record.

Started detached by the build queue (``python -m binderlite.builds.worker <id>``).
It fetches the repository (``fetch``), runs ``run_repo2docker`` on the
checkout in its own process group, appends every event to the build's log,
stops that whole group when ``build_timeout`` passes, pushes the image to the
registry, writes the final ``built``/``failed`` event, removes the checkout
and then lets the next queued build start. SIGTERM (``BuildQueue.stop``, the
admin page's "stop") stops repo2docker's group too and ends the build.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from binderlite.builds.buildpacks.apt import check_apt_packages
from binderlite.builds.fetch import Fetcher
from binderlite.builds.queue import BuildQueue
from binderlite.builds.registry import push_image, split_image
from binderlite.dockerutil import docker_client
from binderlite.errors import BinderliteError
from binderlite.events import Event, EventLog, Phase
from binderlite.observe import metrics
from binderlite.sandbox import checkout, dockernet
from binderlite.settings import Settings, load_settings


class BuildStopped(BinderliteError):
    """The worker got SIGTERM: the build was stopped (it is already recorded as failed)."""


def _stopped(signum, frame) -> None:
    raise BuildStopped("Build stopped.")


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


RUN_REPO2DOCKER = "binderlite.builds.run_repo2docker"
BUILT_MESSAGE = "Built image, launching..."


def fetch_checkout(settings: Settings, build, log: EventLog, work_dir: Path) -> Path:
    """The build's source: a local directory as it is, anything else fetched in the sandbox."""
    if build.content_provider == "local":
        checkout.check_tree(Path(build.repo_url), settings.max_file_size_bytes, settings.max_repo_size_bytes)
        return Path(build.repo_url)
    detail_log = settings.build_logs_dir / f"{build.id}.worker.log"

    def detail(text: str) -> None:
        with open(detail_log, "a", encoding="utf-8") as fh:
            fh.write(text)

    fetcher = Fetcher(
        settings,
        work_dir,
        allow_local=settings.allow_local_repos,
        log=lambda message: log.append(Event.fetching(message)),
        detail=detail,
        timeout=settings.build_timeout,
    )
    return fetcher.fetch(build.repo_url, build.ref, build.content_provider, private=bool(build.private))


def check_apt_txt(source: Path) -> None:
    """Refuse an apt.txt that is not package names, whichever build packs run (repo2docker's check is weaker)."""
    for folder in ("binder", ".binder", ""):
        if (source / folder).is_dir() or not folder:
            apt = source / folder / "apt.txt"
            if apt.is_file():
                check_apt_packages(apt.read_text(errors="replace"))
            return


def run_builder(settings: Settings, build, log: EventLog, source: Path) -> tuple[bool, Event]:
    """Run repo2docker on the checkout in its own process group; (succeeded, its failed event if not)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", RUN_REPO2DOCKER, str(source), build.repo_url, build.ref, build.image],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + settings.build_timeout
    failure = Event.failed("")
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _stop_group(proc)
                return False, Event.failed(f"Build timed out after {settings.build_timeout} s and was stopped.")
            if not selector.select(timeout=min(remaining, 5)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                ev = _parse_line(raw)
                if ev.phase is Phase.FAILED:
                    # repo2docker says "failed" as it gives up; the build's one `failed` event comes
                    # after the process ends, with the reason and the log's tail. Until then its
                    # words are a building line, so watchers do not stop following too early.
                    failure = ev
                    ev = Event.building(ev.message)
                log.append(ev)
    except BuildStopped:
        _stop_group(proc)
        raise
    proc.wait()
    if buffer:
        log.append(_parse_line(buffer))
    if proc.returncode != 0:
        return False, failure if failure.message else Event.failed(f"repo2docker exited with code {proc.returncode}.")
    return True, failure


def _parse_line(raw: bytes) -> Event:
    """One line of repo2docker's ``--json-logs`` output; anything else is a plain log line."""
    text = raw.decode("utf-8", "replace")
    try:
        return Event.from_wire(json.loads(text))
    except ValueError:
        return Event.log(text + "\n")


def push(settings: Settings, image: str, log: EventLog) -> None:
    """Push to the configured registry; a registry problem is a warning, not a failed build."""
    if not settings.registry or split_image(image)[0] != settings.registry:
        return
    log.append(Event.pushing(f"Pushing image to {settings.registry}"))
    try:
        push_image(docker_client(settings), image, lambda msg: log.append(Event.pushing(msg)))
    except (RuntimeError, BinderliteError, OSError) as exc:
        log.append(
            Event.log(f"Warning: could not push {image} to {settings.registry}: {exc}; the image stays local.\n")
        )
    except Exception as exc:  # docker SDK errors: APIError, connection errors
        log.append(
            Event.log(f"Warning: could not push {image} to {settings.registry}: {exc.__class__.__name__}: {exc}\n")
        )


def finish(queue: BuildQueue, build_id: str, log: EventLog, state: str, event: Event) -> None:
    """Record the outcome (``BuildQueue.finish`` counts it), then tell the watchers (the log's last event).

    A build an administrator stopped meanwhile was already recorded: nothing more is said."""
    if queue.finish(build_id, state, event.message):
        log.append(event)


def main(build_id: str) -> int:
    settings = load_settings()
    queue = BuildQueue(settings)
    build = queue.get(build_id)
    log = queue.log(build_id)
    signal.signal(signal.SIGTERM, _stopped)
    if build is None or build.state != "running":  # stopped before this worker started
        return 0
    work_dir = settings.build_work_dir / "checkouts" / build_id
    with metrics.BUILDS_INPROGRESS.track_inprogress():
        try:
            source = fetch_checkout(settings, build, log, work_dir)
            check_apt_txt(source)
            dockernet.ensure_networks(settings)  # build steps run on build_network, under its rules
            ok, failure = run_builder(settings, build, log, source)
            if ok:
                push(settings, build.image, log)
                finish(queue, build_id, log, "succeeded", Event.built(build.image, BUILT_MESSAGE))
            else:
                tail = log.tail_text(settings.build_log_tail)
                message = f"Build failed: {failure.message.strip()}\n--- last lines of the build log ---\n{tail}\n"
                finish(queue, build_id, log, "failed", Event.failed(message, failure.get("status_code")))
        except BuildStopped:
            pass  # BuildQueue.stop recorded the build, its failed event and its count
        except BinderliteError as exc:
            finish(queue, build_id, log, "failed", Event.failed(f"Build failed: {exc.message}\n", exc.status))
        except Exception as exc:  # the worker must always leave a result behind; the details go to its own log
            traceback.print_exc()
            message = (
                f"Build failed: an internal error of binderlite ({exc.__class__.__name__}); "
                "see the build worker's log.\n"
            )
            finish(queue, build_id, log, "failed", Event.failed(message))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            queue.dispatch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
