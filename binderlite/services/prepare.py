"""``binderlite prepare``: everything the services need before they start; idempotent, as root.

``binderlite up`` calls ``prepare`` before it starts the services, and on a
server ``binderlite-prepare.service`` runs it at every boot (Docker networks'
kernel rules do not survive a reboot). It checks the prerequisites, makes the
state tree, binderlite's Docker networks and their kernel rules, the secrets
(service token, proxy token, cookie secret), the service and sandbox users,
and each service's own files: the registry's config, and for a service whose
command needs run-time values (the proxy's token and the hub's address) a
0600 environment file ``<state_dir>/run/<name>.env`` that its unit reads.
It empties the shared metrics folder when no service runs yet (counts
start from zero with the services; a rerun while they run keeps theirs).
Last it checks the sign-in (authenticated mode: settings, secrets, the
directory or provider answering), so ``binderlite up`` starts nothing when
nobody could sign in.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from binderlite.dockerutil import docker_client, local_image_exists
from binderlite.errors import BaseImageMissingError, ConfigError, ServiceError
from binderlite.hub import addresses
from binderlite.hub.auth import check_authenticator
from binderlite.hub.tokens import persistent_secret
from binderlite.observe import multiproc
from binderlite.sandbox.dockernet import ensure_networks
from binderlite.sandbox.process import WORK_MOUNT, ensure_user, sandbox_user
from binderlite.scheduler.runner import lock_held
from binderlite.services.table import Service, all_services
from binderlite.settings import Settings

COOKIE_SECRET_FILE = "jupyterhub_cookie_secret"
SANDBOX_MOUNTS = Path(WORK_MOUNT).parent  # where fetches mount their work dir (the web unit's ReadWritePaths)


def check_prerequisites(settings: Settings) -> None:
    """Raise with a message that says how to fix the first thing missing."""
    client = docker_client(settings)
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        raise ConfigError(
            "docker buildx is not installed; repo2docker needs it. "
            "Run scripts/install-debian.sh (it installs docker-buildx from Debian trixie)."
        )
    if shutil.which("configurable-http-proxy") is None:
        raise ConfigError("configurable-http-proxy is not on PATH: npm install -g configurable-http-proxy@4")
    if settings.registry and shutil.which("docker-registry") is None:
        raise ConfigError("docker-registry is not installed: apt-get install docker-registry (or set registry = '').")
    if settings.build_packs == "binderlite" and not local_image_exists(client, settings.base_image):
        raise BaseImageMissingError(f"Base image {settings.base_image} is missing: run `binderlite base-image`.")


def ensure_service_user(settings: Settings, service: Service) -> pwd.struct_passwd | None:
    """The user a service runs as (created if missing), owning its folders; None for root's services."""
    if not service.user or os.geteuid() != 0:
        return None
    for folder in Path(settings.state_dir).parents:
        if not folder.stat().st_mode & 0o001:
            raise ServiceError(
                f"{service.name} runs as user {service.user}, who cannot enter {folder} on the way to the "
                f"state dir {settings.state_dir}: make it traversable (chmod o+x {folder}) or move state_dir."
            )
    user = ensure_user(service.user)
    for folder in service.owns:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.stat().st_uid != user.pw_uid:
            subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(folder)], check=True)
        folder.chmod(0o700)
    return user


def env_file(settings: Settings, service: Service) -> Path:
    """The environment file of a service's unit (its run-time values)."""
    return settings.run_dir / f"{service.name}.env"


def write_private(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (mode 0600, atomically) unless it already holds it; True if written."""
    try:
        if path.read_text() == text and (path.stat().st_mode & 0o777) == 0o600:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True


def ensure_secrets(settings: Settings) -> None:
    """binderlite's service token, the proxy's token and the hub's cookie secret (kept once made)."""
    addresses.hub_api_token(settings)
    addresses.proxy_auth_token(settings)
    persistent_secret(settings.hub_dir / COOKIE_SECRET_FILE)


def prepare(
    settings: Settings, services: list[Service] | None = None, echo: Callable[[str], None] = lambda _: None
) -> list[Service]:
    """Make everything the services need (idempotent); return the services, in start order."""
    settings.ensure_dirs()
    check_prerequisites(settings)
    if not lock_held(settings):  # nothing runs yet (the scheduler is the last service to start)
        multiproc.reset(settings)
    ensure_networks(settings, force=True)
    ensure_secrets(settings)
    ensure_user(sandbox_user(settings, allow_local=False))
    if settings.allow_local_repos:
        ensure_user(sandbox_user(settings, allow_local=True))
    SANDBOX_MOUNTS.mkdir(exist_ok=True)
    SANDBOX_MOUNTS.chmod(0o755)
    services = all_services(settings) if services is None else services
    for service in services:
        ensure_service_user(settings, service)
        values = service.setup()
        if values:
            path = env_file(settings, service)
            text = "".join(f"{key}={value}\n" for key, value in sorted(values.items()))
            if write_private(path, text):
                echo(f"wrote {path}")
    check_authenticator(settings)  # last: the rest is made even while the directory or provider is away
    return services
