"""A private git server on 127.0.0.1: ``git http-backend`` behind lighttpd with HTTP basic auth, and sshd.

Both are Debian's packages (``lighttpd``, ``openssh-server``), each started
by the test as its own instance, on a free port, with its configuration in a
temp folder, and stopped by PID: no system service is involved.

- HTTP: ``http://127.0.0.1:<port>/git/<name>.git``, smart HTTP, every request
  needs the basic-auth user ``USER`` with the server's token.
- SSH: ``ssh://bltest-git@127.0.0.1:<port><root>/<name>.git``; the only key
  it accepts is the server's deploy key, whose forced command is ``git-shell``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.helpers.gitserver import FIXTURES, GIT

USER = "deploy"
SSH_USER = "bltest-git"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
LIGHTTPD_CONF = """
server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{root}/lighttpd-error.log"
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_cgi", "mod_setenv", "mod_accesslog")
accesslog.filename = "{root}/lighttpd-access.log"
alias.url = ("/git/" => "{backend}/")
$HTTP["url"] =~ "^/git/" {{
    cgi.assign = ("" => "")
    setenv.add-environment = ("GIT_PROJECT_ROOT" => "{repos}", "GIT_HTTP_EXPORT_ALL" => "1",
        "GIT_CONFIG_COUNT" => "1", "GIT_CONFIG_KEY_0" => "safe.directory", "GIT_CONFIG_VALUE_0" => "*")
    auth.backend = "plain"
    auth.backend.plain.userfile = "{users}"
    auth.require = ("" => ("method" => "basic", "realm" => "bltest private git", "require" => "valid-user"))
}}
"""
SSHD_CONF = """
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/ssh_host_ed25519_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
AllowUsers {user}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
PermitRootLogin no
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ensure_ssh_user(home: Path) -> pwd.struct_passwd:
    """The system user the SSH remote logs in as (no password, but not locked: sshd refuses a locked
    account's key). Its one key's forced command is git-shell."""
    try:
        pwd.getpwnam(SSH_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", SSH_USER],
            check=True,
        )  # fmt: skip
    subprocess.run(["usermod", "--password", "*", "--home", str(home), "--shell", "/bin/sh", SSH_USER], check=True)
    return pwd.getpwnam(SSH_USER)


class PrivateGitServer:
    """Bare repositories under ``root/repos``, readable only with the token (HTTP) or the deploy key (SSH)."""

    def __init__(self, root: Path, token: str | None = None, delay: float = 0.0):
        self.root = root
        self.root.chmod(0o755)  # the SSH user reads the repositories and the authorized keys
        self.repos = root / "repos"
        self.work = root / "work"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.token = token or "bltest-" + secrets.token_hex(16)
        self.deploy_key = root / "deploy_key"
        self.http_port = free_port()
        self.ssh_port = free_port()
        self.delay = delay  # seconds each request waits, so every git process lives long enough to be seen
        self.lighttpd: subprocess.Popen | None = None
        self.sshd: subprocess.Popen | None = None

    # ---- servers ------------------------------------------------------------------------
    def start_http(self) -> None:
        www = self.root / "www"
        www.mkdir(exist_ok=True)
        users = self.root / "lighttpd-users"
        users.write_text(f"{USER}:{self.token}\n")
        users.chmod(0o600)
        backend = self.root / "git-http-backend"
        backend.write_text(f"#!/bin/sh\nsleep {self.delay}\nexec {HTTP_BACKEND}\n")
        backend.chmod(0o755)
        conf = self.root / "lighttpd.conf"
        conf.write_text(
            LIGHTTPD_CONF.format(
                www=www, port=self.http_port, root=self.root, backend=backend, repos=self.repos, users=users
            )
        )
        self.lighttpd = subprocess.Popen(
            ["lighttpd", "-D", "-f", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        wait_for_port(self.http_port, self.lighttpd, "lighttpd")

    def start_ssh(self) -> None:
        ensure_ssh_user(self.repos)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.deploy_key)], check=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / "ssh_host_ed25519_key")], check=True
        )
        keys = self.root / "authorized_keys"
        command = f'sleep {self.delay}; exec git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"'
        keys.write_text(
            f'command="{command}",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty '
            + (self.deploy_key.with_suffix(".pub")).read_text()
        )
        keys.chmod(0o644)
        conf = self.root / "sshd_config"
        conf.write_text(SSHD_CONF.format(port=self.ssh_port, root=self.root, user=SSH_USER))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        wait_for_port(self.ssh_port, self.sshd, "sshd")

    def close(self) -> None:
        stop(self.lighttpd)
        stop(self.sshd)

    # ---- repositories ---------------------------------------------------------------------
    def http_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/git/{name}.git"

    def ssh_url(self, name: str) -> str:
        return f"ssh://{SSH_USER}@127.0.0.1:{self.ssh_port}{self.repos}/{name}.git"

    @staticmethod
    def link(url: str, ref: str = "main") -> str:
        """The ``git/<escaped url>/<ref>`` link path of a clone URL."""
        return f"git/{quote(url, safe='')}/{ref}"

    def add_fixture(self, fixture: str, name: str | None = None, extra: dict[str, str] | None = None) -> str:
        """Publish ``tests/fixtures/repos/<fixture>`` (plus ``extra`` files) as ``name``; return its commit."""
        name = name or fixture
        work = self.work / name
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(FIXTURES / fixture, work)
        for path, text in (extra or {}).items():
            (work / path).write_text(text)
        subprocess.run([*GIT, "init", "-q"], cwd=work, check=True)
        subprocess.run([*GIT, "add", "-A"], cwd=work, check=True)
        subprocess.run([*GIT, "commit", "-q", "-m", "private fixture"], cwd=work, check=True)
        bare = self.repos / f"{name}.git"
        if bare.exists():
            shutil.rmtree(bare)
        subprocess.run([*GIT, "clone", "-q", "--bare", str(work), str(bare)], check=True)
        subprocess.run(["chmod", "-R", "a+rX", str(self.repos)], check=True)
        if self.sshd is not None:  # git-shell's upload-pack reads only repositories its user owns
            subprocess.run(["chown", "-R", SSH_USER, str(bare)], check=True)
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True
        ).stdout.strip()

    # ---- binderlite's side ------------------------------------------------------------------
    def write_credentials(self, path: Path, *, token: str | None = None, ssh: bool = True) -> Path:
        """A secrets file (mode 0600) with this server's HTTP token (or ``token``) and, if ``ssh``, its key."""
        lines = [
            "[[git]]",
            f'host = "127.0.0.1:{self.http_port}"',
            f'username = "{USER}"',
            f'token = "{token if token is not None else self.token}"',
        ]
        if ssh:
            lines += ["", "[[git]]", f'host = "127.0.0.1:{self.ssh_port}"', f'ssh_key = "{self.deploy_key}"']
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path


@contextlib.contextmanager
def private_git_server(token: str | None = None, ssh: bool = True, delay: float = 0.0) -> Iterator[PrivateGitServer]:
    """A started server (HTTP, and SSH if ``ssh``) in a fresh folder, stopped and removed at the end.

    The folder is not under pytest's (private) temp tree: the SSH user must reach the repositories.
    """
    missing = [tool for tool in ("lighttpd", "/usr/sbin/sshd" if ssh else "lighttpd") if not shutil.which(tool)]
    if missing:
        message = f"the private git server needs {missing} (Debian: lighttpd, openssh-server)"
        if os.environ.get("CI"):
            raise RuntimeError(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="bltest-privgit-"))
    server = PrivateGitServer(root, token, delay)
    try:
        server.start_http()
        if ssh:
            server.start_ssh()
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
