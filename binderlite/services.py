"""A tiny process supervisor: the registry, the proxy and JupyterHub as child processes.

Each ``Service`` is a name, an argv, extra environment and a readiness check.
``start`` runs one with its log in ``<state_dir>/logs/<name>.log`` and its pid in
``<state_dir>/run/<name>.pid``, waits until it answers, and otherwise fails with
the end of its log. ``stop`` sends SIGTERM, then SIGKILL after a timeout, by pid
only. ``binderlite up`` appends the web app and the scheduler to
``core_services()`` and calls ``start_all`` / ``stop_all``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from binderlite import hub
from binderlite.errors import BinderliteError
from binderlite.settings import Settings

LOG_TAIL_LINES = 30
POLL_INTERVAL = 0.2

_children: dict[int, subprocess.Popen] = {}


class ServiceError(BinderliteError):
    """A service did not start or stop; the message carries the end of its log."""


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    describe: str = ""  # where it answers, for messages


def _http_ok(url: str, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, headers=headers, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return check


def settings_env(settings: Settings) -> dict[str, str]:
    """``BINDERLITE_*`` variables that make a child process load exactly these settings."""
    env = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[f"BINDERLITE_{f.name.upper()}"] = str(value)
    return env


def _executable(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} is not installed (not on PATH); run scripts/install-debian.sh.")
    return found


def registry_service(settings: Settings) -> Service:
    """Debian's docker-registry on ``settings.registry``, storing under ``registry_dir``."""
    config = settings.run_dir / "registry.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    settings.registry_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {settings.registry_dir}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {settings.registry}\n"
    )
    return Service(
        name="registry",
        argv=[_executable("docker-registry"), "serve", str(config)],
        ready=_http_ok(f"http://{settings.registry}/v2/"),
        describe=f"http://{settings.registry}/v2/",
    )


def proxy_service(settings: Settings) -> Service:
    """configurable-http-proxy, its own process so a hub restart keeps users connected."""
    target = hub.hub_url(settings)
    token = hub.proxy_auth_token(settings)
    argv = [
        _executable("configurable-http-proxy"),
        "--ip", settings.proxy_ip,
        "--port", str(settings.proxy_port),
        "--api-ip", "127.0.0.1",
        "--api-port", str(settings.proxy_api_port),
        "--default-target", target,
        "--error-target", f"{target}/hub/error",
    ]  # fmt: skip
    api = hub.proxy_api_url(settings)
    return Service(
        name="proxy",
        argv=argv,
        env={"CONFIGPROXY_AUTH_TOKEN": token},
        ready=_http_ok(f"{api}/api/routes", {"Authorization": f"token {token}"}),
        describe=api,
    )


def hub_service(settings: Settings) -> Service:
    """JupyterHub with binderlite's config, seeing the same settings as this process."""
    settings.hub_dir.mkdir(parents=True, exist_ok=True)
    url = hub.hub_url(settings)
    return Service(
        name="hub",
        argv=[_executable("jupyterhub"), "-f", str(hub.CONFIG_FILE)],
        env=settings_env(settings),
        ready=_http_ok(f"{url}/hub/api/"),
        ready_timeout=90.0,
        describe=f"{url}/hub/api/",
    )


def core_services(settings: Settings) -> list[Service]:
    """Registry (if configured), proxy, hub — in start order."""
    services = [registry_service(settings)] if settings.registry else []
    return services + [proxy_service(settings), hub_service(settings)]


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
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / f"{service.name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            service.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **service.env},
            cwd=settings.state_path,
            start_new_session=True,  # Ctrl-C reaches us, and we stop children in order
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
