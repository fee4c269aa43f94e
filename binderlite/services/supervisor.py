"""Run the services of the table as child processes, for ``binderlite up`` and the tests.

``start`` runs one service with its log in ``<state_dir>/logs/<name>.log``
and its pid in ``<state_dir>/run/<name>.pid``, waits until it answers, and
otherwise fails with the end of its log. ``stop`` sends SIGTERM, then SIGKILL
after a timeout, by pid only (a stale pid file of a process that is gone is
cleared, never acted on). On a server, systemd does this job instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from binderlite.errors import ServiceError
from binderlite.services.prepare import ensure_service_user
from binderlite.services.table import Service
from binderlite.settings import Settings

LOG_TAIL_LINES = 30
POLL_INTERVAL = 0.2

_children: dict[int, subprocess.Popen] = {}


def _run_as(settings: Settings, service: Service) -> dict:
    """Popen arguments that drop to the service's user (when binderlite runs as root), owning its folders."""
    user = ensure_service_user(settings, service)
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def running_pid(settings: Settings, name: str) -> int | None:
    """The pid of a running service, clearing a stale pid file of a process that is gone."""
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if _alive(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def log_tail(settings: Settings, name: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = (settings.logs_dir / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start(settings: Settings, service: Service) -> int:
    """Start one service and wait until it answers; return its pid."""
    pid = running_pid(settings, service.name)
    if pid is not None:
        raise ServiceError(
            f"{service.name} is already running as pid {pid} (pid file "
            f"{_pid_file(settings, service.name)}); stop it first (kill {pid})."
        )
    if service.ready():
        raise ServiceError(
            f"Something already answers at {service.describe}, where {service.name} should "
            "run; stop it or choose other ports in the settings."
        )
    settings.ensure_dirs()
    values = service.setup()
    env = {
        **os.environ,
        **(settings.to_environment() if service.loads_settings else {}),
        **service.environment,
        **values,
    }
    log_path = settings.logs_dir / f"{service.name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            service.command(values),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=settings.state_dir,
            start_new_session=True,  # Ctrl-C reaches us, and we stop children in order
            umask=0o077,  # what services write (the hub's database, the registry's blobs) is theirs alone
            **_run_as(settings, service),
        )
    _children[proc.pid] = proc
    _pid_file(settings, service.name).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + service.ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _forget(settings, service.name, proc.pid)
            raise ServiceError(
                f"{service.name} exited with status {proc.returncode} while starting "
                f"(log {log_path}):\n{log_tail(settings, service.name)}"
            )
        if service.ready():
            return proc.pid
        time.sleep(POLL_INTERVAL)
    stop(settings, service.name)
    raise ServiceError(
        f"{service.name} did not answer at {service.describe} within "
        f"{service.ready_timeout:.0f} s (log {log_path}):\n{log_tail(settings, service.name)}"
    )


def _forget(settings: Settings, name: str, pid: int) -> None:
    _children.pop(pid, None)
    _pid_file(settings, name).unlink(missing_ok=True)


def stop(settings: Settings, name: str, timeout: float = 15.0) -> None:
    """SIGTERM the service's pid, SIGKILL it after ``timeout`` seconds; no-op if not running."""
    pid = running_pid(settings, name)
    if pid is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(POLL_INTERVAL)
        if not _alive(pid):
            break
    child = _children.get(pid)
    if child is not None:
        child.wait(timeout=5)
    if _alive(pid):
        raise ServiceError(f"{name} (pid {pid}) did not stop, even after SIGKILL.")
    _forget(settings, name, pid)


def wait_ready(service: Service) -> None:
    """Return once ``service`` answers; ServiceError after its ``ready_timeout``."""
    deadline = time.monotonic() + service.ready_timeout
    while not service.ready():
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{service.name} did not answer at {service.describe} within {service.ready_timeout:.0f} s."
            )
        time.sleep(POLL_INTERVAL)


def how_it_ended(pid: int) -> str:
    """How a child that is gone ended: ``died with signal 9``, ``exited with status 1``."""
    child = _children.pop(pid, None)
    code = child.poll() if child is not None else None
    if code is None:
        return "is gone"
    if code < 0:
        return f"died with signal {-code}"
    return f"exited with status {code}"


def clear_leftovers(service: Service, pid: int, timeout: float = 10.0) -> None:
    """After ``service`` (leader ``pid``) died: wait for what it left (e.g. gunicorn's workers) to stop answering.

    Its processes are its own session and process group (``start_new_session``);
    any still answering after ``timeout`` seconds are killed, by that group only.
    Detached children in their own sessions (builds) are not touched.
    """
    deadline = time.monotonic() + timeout
    while service.ready() and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5.0
    while service.ready() and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)


def start_all(settings: Settings, services: list[Service]) -> None:
    """Start services in order; if one fails, stop those already started and re-raise."""
    started: list[Service] = []
    try:
        for service in services:
            start(settings, service)
            started.append(service)
    except BaseException:
        stop_all(settings, started)
        raise


def stop_all(settings: Settings, services: list[Service], timeout: float = 15.0) -> None:
    """Stop services in reverse start order."""
    for service in reversed(services):
        stop(settings, service.name, timeout=timeout)
