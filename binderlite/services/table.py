"""The service table: every process binderlite runs, in start order, with how to tell it is ready.

``all_services`` is the one list: the registry (if configured), the proxy,
JupyterHub, the workshop's package index (where a mirror exists), the web
app (gunicorn) and the scheduler. ``binderlite up`` runs
it through ``supervisor``; ``binderlite systemd-units`` renders a unit per
entry (``units``), so the two can never disagree. Building the table has no
side effects: what a service needs on disk, and the values only known at run
time (secrets, the hub's address), come from its ``setup``, which
``binderlite prepare`` and the supervisor call.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from binderlite.errors import ServiceError
from binderlite.hub import addresses
from binderlite.observe import multiproc
from binderlite.sandbox.process import WORK_MOUNT
from binderlite.scheduler.runner import lock_held, lock_path
from binderlite.settings import Settings
from binderlite.workshop import index as workshop_index
from binderlite.workshop.index import build_network_gateway
from binderlite.workshop.mirror import mirror_dir

DOCKER_SOCKET = "the Docker socket (root-equivalent: it can start a privileged container)"


def _no_setup() -> dict[str, str]:
    return {}


@dataclass
class Service:
    """One process: its command, readiness, user, and what its systemd unit needs to know."""

    name: str
    summary: str  # one line: the unit's Description=
    argv: list[str]  # may name ${VARIABLES} that ``setup`` returns (expanded by the supervisor, or by systemd)
    ready: Callable[[], bool]
    describe: str = ""  # where it answers, for messages
    ready_timeout: float = 60.0
    setup: Callable[[], dict[str, str]] = _no_setup  # makes its files; returns run-time values (secrets, addresses)
    values: str = ""  # what those run-time values are, for its unit's comment
    loads_settings: bool = False  # reads binderlite's settings (up: BINDERLITE_*; units: BINDERLITE_CONFIG)
    environment: dict[str, str] = field(default_factory=dict)  # fixed variables, no secret (units: Environment=)
    user: str | None = None  # the system user it runs as (None: root, because it needs the Docker socket)
    owns: list[Path] = field(default_factory=list)  # folders that user must own
    writes: list[Path] = field(default_factory=list)  # everything else it writes (the unit's ReadWritePaths=)
    notify: bool = False  # tells systemd itself when it is ready (sd_notify): Type=notify
    keeps_children: bool = False  # processes it starts (builds) outlive a restart of it
    stop_status: int = 0  # the exit status it ends with when told to stop (SIGTERM)
    sandboxes: bool = False  # makes namespaces (the fetch sandbox: unshare), so its unit may not forbid them
    others_wait: bool = False  # the services after it need it answering: its unit waits for that (ExecStartPost)
    why_root: str = ""  # why it runs as root, said in its unit

    def command(self, values: dict[str, str]) -> list[str]:
        """``argv`` with ``${NAME}`` replaced from ``values``, as systemd expands them."""
        return [re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], arg) for arg in self.argv]


def _http_ok(url: Callable[[], str], headers: Callable[[], dict[str, str]] = dict) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url(), headers=headers(), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return check


def program(name: str) -> str:
    """A program that does not come with binderlite (from PATH): it stays put when binderlite is upgraded."""
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} is not installed (not on PATH); run scripts/install-debian.sh.")
    return found


def registry_config(settings: Settings) -> Path:
    return settings.registry_dir / "config.yml"


def registry_service(settings: Settings, find: Callable[[str], str] = program) -> Service:
    """Debian's docker-registry on ``settings.registry``, storing under ``registry_dir``, as the service user."""
    config = registry_config(settings)

    def setup() -> dict[str, str]:
        settings.registry_dir.mkdir(parents=True, exist_ok=True)
        text = (
            "version: 0.1\n"
            "log:\n  level: info\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {settings.registry_dir}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {settings.registry}\n"
        )
        if not config.exists() or config.read_text() != text:
            config.write_text(text)
        config.chmod(0o644)  # no secret in it; the service user reads it
        return {}

    url = f"http://{settings.registry}/v2/"
    return Service(
        name="registry",
        summary="binderlite's image registry (docker-registry)",
        argv=[find("docker-registry"), "serve", str(config)],
        ready=_http_ok(lambda: url),
        describe=url,
        setup=setup,
        user=settings.service_user,
        owns=[settings.registry_dir],
    )


def proxy_service(settings: Settings, find: Callable[[str], str] = program) -> Service:
    """configurable-http-proxy, its own process so a hub restart keeps users connected."""

    def setup() -> dict[str, str]:
        return {
            "CONFIGPROXY_AUTH_TOKEN": addresses.proxy_auth_token(settings),
            "BINDERLITE_HUB_URL": addresses.hub_url(settings),
        }

    argv = [
        find("configurable-http-proxy"),
        "--ip", settings.proxy_ip,
        "--port", str(settings.proxy_port),
        "--api-ip", "127.0.0.1",
        "--api-port", str(settings.proxy_api_port),
        "--default-target", "${BINDERLITE_HUB_URL}",
        "--error-target", "${BINDERLITE_HUB_URL}/hub/error",
    ]  # fmt: skip
    api = addresses.proxy_api_url(settings)
    return Service(
        name="proxy",
        summary="binderlite's proxy to users' servers (configurable-http-proxy)",
        argv=argv,
        ready=_http_ok(
            lambda: f"{api}/api/routes", lambda: {"Authorization": f"token {addresses.proxy_auth_token(settings)}"}
        ),
        describe=api,
        setup=setup,
        values="the proxy's token and the hub's address",
        user=settings.service_user,
        stop_status=2,  # configurable-http-proxy's exit status on SIGTERM
    )


def hub_service(settings: Settings, python: str = sys.executable) -> Service:
    """JupyterHub with binderlite's config, seeing the same settings as this process."""
    return Service(
        name="hub",
        summary="binderlite's JupyterHub (starts users' servers)",
        argv=[python, "-m", "binderlite.hub"],
        ready=_http_ok(lambda: f"{addresses.hub_url(settings)}/hub/api/"),
        ready_timeout=90.0,
        describe=f"the hub's API (/hub/api/ on port {settings.hub_port})",
        loads_settings=True,
        others_wait=True,
        writes=[Path(settings.state_dir)],
        why_root=f"DockerSpawner starts users' servers through {DOCKER_SOCKET}; it also sets the kernel rules "
        "of the servers' network (iptables); and with authenticator 'pam' it checks passwords against "
        "/etc/shadow, which only root and the shadow group may read (as root it needs no setuid helper, "
        "so NoNewPrivileges stays)",
    )


def index_service(settings: Settings, python: str = sys.executable) -> Service:
    """pypiserver serving the workshop's package mirror to builds, on the host's address on their network.

    pypiserver serves a plain folder (no database, nothing to migrate or back
    up) and with ``--disable-fallback`` a package the mirror lacks is a 404,
    never a redirect to PyPI: a build offline fails at once instead of waiting
    on DNS. It runs as the service user and binds the builds' gateway only.
    """
    folder = mirror_dir(settings)

    def setup() -> dict[str, str]:
        return {"BINDERLITE_INDEX_HOST": build_network_gateway(settings)}

    argv = [
        python, "-m", "pypiserver", "run",
        "--host", "${BINDERLITE_INDEX_HOST}",
        "--port", str(settings.workshop_index_port),
        "--disable-fallback",
        "--authenticate", ".", "--passwords", ".",  # read-only: nothing is uploaded
        "--server", "gevent",
        str(folder),
    ]  # fmt: skip
    return Service(
        name="index",
        summary="binderlite's workshop package index (pypiserver serving the package mirror to builds)",
        argv=argv,
        ready=_http_ok(lambda: workshop_index.index_url(settings)),
        describe=f"the workshop's package index (port {settings.workshop_index_port} on the builds' network)",
        setup=setup,
        values="the host's address on the builds' network",
        user=settings.service_user,
    )


def wants_index(settings: Settings) -> bool:
    """The index runs where a workshop's mirror exists and builds may use it (``workshop_index`` not 'never')."""
    return settings.workshop_index != "never" and workshop_index.mirror_exists(settings)


def core_services(
    settings: Settings, python: str = sys.executable, find: Callable[[str], str] = program
) -> list[Service]:
    """Registry (if configured), proxy, hub — in start order."""
    services = [registry_service(settings, find)] if settings.registry else []
    return services + [proxy_service(settings, find), hub_service(settings, python)]


def web_service(settings: Settings, python: str = sys.executable) -> Service:
    """gunicorn serving the Flask app on web_host:web_port."""
    url = f"http://{settings.web_host}:{settings.web_port}"
    return Service(
        name="web",
        summary="binderlite's web app (links, build API, pages; gunicorn)",
        argv=[python, "-m", "gunicorn", "-c", "python:binderlite.web.gunicorn_conf", "binderlite.web.wsgi:app"],
        ready=_http_ok(lambda: f"{url}/versions"),
        describe=url,
        loads_settings=True,
        environment=multiproc.environment(settings),  # its workers and the builds they start count there
        writes=[Path(settings.state_dir), Path(WORK_MOUNT).parent],
        notify=True,
        keeps_children=True,
        sandboxes=True,
        why_root=f"builds run through {DOCKER_SOCKET}; fetches run in a sandbox it makes (a mount namespace, "
        "then setpriv to the sandbox user) behind kernel rules it sets (iptables)",
    )


def scheduler_service(settings: Settings, python: str = sys.executable) -> Service:
    """The one scheduler process (culling, reconciliation, disk)."""
    return Service(
        name="scheduler",
        summary="binderlite's scheduler (culls idle servers, reconciles, collects disk)",
        argv=[python, "-m", "binderlite.cli", "scheduler"],
        ready=lambda: lock_held(settings),
        describe=f"lock {lock_path(settings)}",
        loads_settings=True,
        environment=multiproc.environment(settings),
        writes=[Path(settings.state_dir)],
        why_root=f"it removes orphaned containers and old images through {DOCKER_SOCKET}",
    )


def all_services(
    settings: Settings, python: str = sys.executable, find: Callable[[str], str] = program
) -> list[Service]:
    """Every service in start order: what ``binderlite up`` runs and the systemd units are made from.

    ``python`` is the interpreter binderlite's own services run with (a venv's
    ``bin/python``); ``find`` looks up the programs that do not come with binderlite.
    """
    index = [index_service(settings, python)] if wants_index(settings) else []
    return (
        core_services(settings, python, find)
        + index
        + [web_service(settings, python), scheduler_service(settings, python)]
    )
