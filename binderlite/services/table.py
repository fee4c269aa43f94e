"""The service table: every process binderlite runs, in start order, with how to tell it is ready.

``all_services`` is the one list: the registry (if configured), the proxy,
JupyterHub, the web app (gunicorn) and the scheduler. ``binderlite up`` runs
it through ``supervisor``; the systemd units run the same commands with the
same environment. Each child gets binderlite's settings as ``BINDERLITE_*``
variables (``Settings.to_environment``), so it loads exactly what the parent had.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from binderlite.errors import ServiceError
from binderlite.hub import addresses
from binderlite.scheduler.runner import lock_held, lock_path
from binderlite.settings import Settings


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    describe: str = ""  # where it answers, for messages
    user: str | None = None  # the system user it runs as (None: root, because it needs the Docker socket)
    owns: list[Path] = field(default_factory=list)  # folders that user must own


def _http_ok(url: str, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, headers=headers, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return check


def _executable(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} is not installed (not on PATH); run scripts/install-debian.sh.")
    return found


def registry_service(settings: Settings) -> Service:
    """Debian's docker-registry on ``settings.registry``, storing under ``registry_dir``, as the service user."""
    config = settings.registry_dir / "config.yml"
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
        user=settings.service_user,
        owns=[settings.registry_dir],
    )


def proxy_service(settings: Settings) -> Service:
    """configurable-http-proxy, its own process so a hub restart keeps users connected."""
    target = addresses.hub_url(settings)
    token = addresses.proxy_auth_token(settings)
    argv = [
        _executable("configurable-http-proxy"),
        "--ip", settings.proxy_ip,
        "--port", str(settings.proxy_port),
        "--api-ip", "127.0.0.1",
        "--api-port", str(settings.proxy_api_port),
        "--default-target", target,
        "--error-target", f"{target}/hub/error",
    ]  # fmt: skip
    api = addresses.proxy_api_url(settings)
    return Service(
        name="proxy",
        argv=argv,
        env={"CONFIGPROXY_AUTH_TOKEN": token},
        ready=_http_ok(f"{api}/api/routes", {"Authorization": f"token {token}"}),
        describe=api,
        user=settings.service_user,
    )


def hub_service(settings: Settings) -> Service:
    """JupyterHub with binderlite's config, seeing the same settings as this process."""
    settings.hub_dir.mkdir(parents=True, exist_ok=True)
    url = addresses.hub_url(settings)
    return Service(
        name="hub",
        argv=[_executable("jupyterhub"), "-f", str(addresses.CONFIG_FILE)],
        env=settings.to_environment(),
        ready=_http_ok(f"{url}/hub/api/"),
        ready_timeout=90.0,
        describe=f"{url}/hub/api/",
    )


def core_services(settings: Settings) -> list[Service]:
    """Registry (if configured), proxy, hub — in start order."""
    services = [registry_service(settings)] if settings.registry else []
    return services + [proxy_service(settings), hub_service(settings)]


def web_service(settings: Settings) -> Service:
    """gunicorn serving the Flask app on web_host:web_port."""
    url = f"http://{settings.web_host}:{settings.web_port}"
    return Service(
        name="web",
        argv=[
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:binderlite.web.gunicorn_conf",
            "binderlite.web.wsgi:app",
        ],
        env=settings.to_environment(),
        ready=_http_ok(f"{url}/versions"),
        describe=url,
    )


def scheduler_service(settings: Settings) -> Service:
    """The one scheduler process (culling, reconciliation, disk)."""
    return Service(
        name="scheduler",
        argv=[sys.executable, "-m", "binderlite.cli", "scheduler"],
        env=settings.to_environment(),
        ready=lambda: lock_held(settings),
        describe=f"lock {lock_path(settings)}",
    )


def all_services(settings: Settings) -> list[Service]:
    """Every service in start order: what ``binderlite up`` runs and the systemd units are made from."""
    return core_services(settings) + [web_service(settings), scheduler_service(settings)]
