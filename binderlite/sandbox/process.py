"""Start a command as the sandbox user, in a private mount namespace, with resource limits.

``sandboxed_argv`` wraps a command line: ``unshare`` gives it a mount
namespace of its own, where (still as root) private empty filesystems cover
every world-writable directory and binderlite's state and configuration, and
its work directory is bound at ``WORK_MOUNT``; then ``setpriv`` drops to the
sandbox user for good (no groups, no capabilities, no new privileges) and
``prlimit`` caps memory, file size, processes, CPU time and open files. Only
util-linux tools are used, which every Debian has. The environment is built
from scratch: no ``HOME`` with keys or git credentials, no token of
binderlite's.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from binderlite.errors import ConfigError, UnsafeRepositoryError
from binderlite.settings import Settings

WORK_MOUNT = "/run/binderlite-sandbox/work"
WATCH_INTERVAL = 0.5
OUTPUT_LIMIT = 256 * 1024
# World-writable on Debian, or holding secrets: each gets a private, empty tmpfs.
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lib/docker", "/etc/binderlite", "/root")
SETUP_SCRIPT = r"""
set -e
umask 022
mkdir -p "$BINDERLITE_SANDBOX_MOUNT"
chmod 0755 "${BINDERLITE_SANDBOX_MOUNT%/*}"
mount --bind "$BINDERLITE_SANDBOX_WORK" "$BINDERLITE_SANDBOX_MOUNT"
for dir in $BINDERLITE_SANDBOX_HIDE; do
    if [ -d "$dir" ]; then mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev tmpfs "$dir"; fi
done
cd "$BINDERLITE_SANDBOX_MOUNT"
unset BINDERLITE_SANDBOX_HIDE BINDERLITE_SANDBOX_MOUNT BINDERLITE_SANDBOX_WORK
exec "$@"
"""


class SandboxLimitError(UnsafeRepositoryError):
    """A sandboxed command was stopped because it went past a limit."""


@dataclass(frozen=True)
class Limits:
    """Kernel limits for one sandboxed command (``prlimit``)."""

    memory: int = 4 * 1024**3  # address space, bytes (git maps pack files)
    file_size: int = 1024**3  # largest file it may write, bytes
    processes: int = 256  # processes of the sandbox user at once
    cpu_seconds: int = 900
    open_files: int = 1024

    def argv(self) -> list[str]:
        return [
            "prlimit",
            f"--as={self.memory}",
            f"--fsize={self.file_size}",
            f"--nproc={self.processes}",
            f"--cpu={self.cpu_seconds}",
            f"--nofile={self.open_files}",
            "--",
        ]


def sandbox_user(settings: Settings, allow_local: bool) -> str:
    """The system user a fetch runs as: the strict one, or the one allowed to reach local addresses."""
    return f"{settings.sandbox_user}-local" if allow_local else settings.sandbox_user


def ensure_user(name: str) -> pwd.struct_passwd:
    """The sandbox user, created as a locked system account with no home if it does not exist."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    proc = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
         "--user-group", name],
        capture_output=True,
        text=True,
    )  # fmt: skip
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"The sandbox user {name!r} does not exist and could not be created ({proc.stderr.strip()}); "
            f"create it with `useradd --system --user-group {name}` as root."
        ) from None


def base_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment: a PATH, a private HOME, UTF-8, and only what ``extra`` adds."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK_MOUNT,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
    }
    env.update(extra or {})
    return env


def sandboxed_argv(user: pwd.struct_passwd, argv: Sequence[str], limits: Limits) -> list[str]:
    """The full command line that runs ``argv`` confined as ``user``."""
    drop = [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]
    return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", SETUP_SCRIPT, "sandbox",
            *drop, *limits.argv(), *argv]  # fmt: skip


def prepare_work_dir(path: Path, user: pwd.struct_passwd) -> None:
    """An empty directory the sandbox user owns (and nobody else can enter)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(path, 0o700)


def popen(
    settings: Settings,
    argv: Sequence[str],
    work_dir: Path,
    *,
    allow_local: bool = False,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    confine: bool = True,
) -> subprocess.Popen:
    """Start ``argv`` in the sandbox with ``work_dir`` as its only writable place (its cwd and HOME).

    Output (stdout and stderr together) is a pipe; the process leads its own
    process group, so ``stop`` ends everything it started. ``confine=False``
    keeps the clean environment, the limits and the process group but runs as
    this process's user, outside the namespace: for reading a local path the
    administrator allowed (``allow_local_repos``), where no network is involved.
    """
    limits = limits or Limits()
    if not confine:
        return subprocess.Popen(
            [*limits.argv(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=base_environment({**(env or {}), "HOME": str(work_dir)}),
            cwd=work_dir,
            start_new_session=True,
        )
    user = ensure_user(sandbox_user(settings, allow_local))
    setup_env = {
        "BINDERLITE_SANDBOX_HIDE": " ".join([*HIDDEN_DIRS, settings.state_dir]),
        "BINDERLITE_SANDBOX_MOUNT": WORK_MOUNT,
        "BINDERLITE_SANDBOX_WORK": str(work_dir),
    }
    return subprocess.Popen(
        sandboxed_argv(user, argv, limits),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**base_environment(env), **setup_env},
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    """Kill the sandboxed process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run(
    settings: Settings,
    argv: Sequence[str],
    work_dir: Path,
    *,
    timeout: float,
    allow_local: bool = False,
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    watch: Callable[[], str | None] | None = None,
    confine: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``argv`` in the sandbox to the end; output as text (the last ``OUTPUT_LIMIT`` bytes).

    Every ``WATCH_INTERVAL`` seconds ``watch`` may name a problem (e.g. the
    checkout grew too large): the process group is killed and SandboxLimitError
    raised with that message. After ``timeout`` seconds: killed, TimeoutExpired.
    """
    proc = popen(settings, argv, work_dir, allow_local=allow_local, env=env, limits=limits, confine=confine)
    output = bytearray()

    def drain() -> None:
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            output.extend(chunk)
            del output[:-OUTPUT_LIMIT]

    reader = threading.Thread(target=drain, daemon=True, name="sandbox-output")
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                proc.wait(timeout=WATCH_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(proc.args, timeout) from None
            problem = watch() if watch else None
            if problem:
                raise SandboxLimitError(problem)
    finally:
        stop(proc)  # also whatever it left running in its process group
        reader.join(timeout=5)
    return subprocess.CompletedProcess(proc.args, proc.returncode, output.decode("utf-8", "replace"), "")
