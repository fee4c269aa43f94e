"""Attacks through what a link makes binderlite fetch, performed on the real build pipeline."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from binderlite.errors import FetchError, RefNotFoundError
from binderlite.links import resolve_link
from tests.helpers.ckansite import CKANSite
from tests.helpers.images import build_link
from tests.helpers.netns import outside_host
from tests.helpers.streams import log_text

pytestmark = pytest.mark.integration


class FakeCKAN(CKANSite):
    """A CKAN site on 127.0.0.1 whose dataset names its resources with hostile ids."""

    def __init__(self, resource_ids: list[str]):
        self.resources = [{"id": rid, "url": f"/files/{i}/"} for i, rid in enumerate(resource_ids)]
        self.resources.append({"id": "fine", "url": "/files/requirements.txt"})
        super().__init__()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict | bytes]:
        if path.endswith("/status_show"):
            return 200, {"success": True, "result": {"ckan_version": "2.10.0"}}
        if path.endswith("/package_show"):
            listed = [{**r, "url": f"http://127.0.0.1:{self.port}{r['url']}"} for r in self.resources]
            return 200, {"success": True, "result": {"metadata_modified": "2026-01-02T03:04:05.000000",
                                                     "resources": listed}}  # fmt: skip
        if path.startswith("/files/"):
            return 200, b"six==1.16.0\n" if path.endswith(".txt") else b"* * * * * root touch /pwned\n"
        return 404, b""


@pytest.fixture
def escape_targets(tmp_path):
    """Places outside any checkout that a record tries to write to: one in /tmp, one in a root-owned folder."""
    outside = Path("/opt/bltest-escape")
    outside.mkdir(mode=0o755, exist_ok=True)
    targets = [tmp_path / "pwned-in-tmp", outside / "pwned"]
    yield targets
    shutil.rmtree(outside, ignore_errors=True)


def test_ckan_record_with_absolute_resource_ids_writes_nothing_outside(settings, escape_targets):
    ckan = FakeCKAN([str(target) for target in escape_targets])
    try:
        final, events = build_link(settings, ckan.link("hostile"))
    finally:
        ckan.close()
    for target in escape_targets:
        assert not target.exists(), f"a CKAN record wrote {target} on the host"
    assert any(p.startswith("/files/") for p in ckan.requests), "the record's resources were requested"
    assert final["phase"] == "failed", final
    assert "outside the repository" in final["message"], final["message"]
    assert "Traceback" not in log_text(events)


# ---- the sandbox's network rules: a "public" host that points inside ------------------------------

REDIRECTOR = r"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

address, port, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Redirect(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", target + self.path)
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer((address, port), Redirect).serve_forever()
"""


class Canary:
    """A TCP service on this machine that counts who connects (it should be nobody)."""

    def __init__(self, address: str = "127.0.0.1"):
        self.sock = socket.create_server((address, 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def outside():
    with outside_host(subnet=3) as host:
        yield host


def _serve_in(host, argv: list[str], port: int):
    proc = host.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host.address, port), 1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server {argv} did not start")


def _strict(settings):
    return dataclasses.replace(settings, allow_local_repos=False)


def test_a_redirect_to_an_internal_address_is_refused_at_connect_time(settings, outside):
    canary = Canary()
    port = 18090
    target = f"http://127.0.0.1:{canary.port}"
    redirector = _serve_in(outside, ["/usr/bin/python3", "-c", REDIRECTOR, outside.address, str(port), target], port)
    url = f"http://{outside.address}:{port}/repo.git"
    try:
        # git itself, as root and outside the sandbox, follows the redirect: the test's setup is real
        subprocess.run(["git", "ls-remote", url], capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        assert canary.hits >= 1, "the redirect reaches the canary when nothing stops it"
        canary.hits = 0
        with pytest.raises(FetchError, match="could not be reached"):
            resolve_link(f"git/{quote(url, safe='')}/main", _strict(settings))
        _, events = build_link(_strict(settings), f"git/{quote(url, safe='')}/{'a' * 40}")  # a SHA skips ls-remote
        assert events[-1]["phase"] == "failed", events[-1]
        assert canary.hits == 0, "the sandbox reached an internal address through a redirect"
        text = log_text(events)
        assert f"127.0.0.1:{canary.port}" not in text, "git's own words (internal addresses) reach the user"
    finally:
        redirector.kill()
        canary.close()


def test_a_submodule_on_an_internal_address_is_refused(settings, outside, tmp_path):
    canary = Canary()
    served = tmp_path / "served"
    work = tmp_path / "parent"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    (work / "requirements.txt").write_text("six==1.16.0\n")
    (work / ".gitmodules").write_text(
        f'[submodule "sub"]\n\tpath = sub\n\turl = http://127.0.0.1:{canary.port}/sub.git\n'
    )
    subprocess.run(
        [*git, "-C", str(work), "update-index", "--add", "--cacheinfo", f"160000,{'b' * 40},sub"], check=True
    )
    subprocess.run([*git, "-C", str(work), "add", "requirements.txt", ".gitmodules"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "parent with an internal submodule"], check=True)
    listed = subprocess.run(["git", "-C", str(work), "ls-tree", "HEAD"], capture_output=True, text=True).stdout
    assert "160000 commit" in listed, "the submodule's gitlink is committed"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "parent.git")], check=True)
    subprocess.run(["git", "-C", str(served / "parent.git"), "update-server-info"], check=True)
    port = 18091
    argv = ["/usr/bin/python3", "-m", "http.server", "--directory", str(served), "--bind", outside.address, str(port)]
    server = _serve_in(outside, argv, port)
    try:
        url = quote(f"http://{outside.address}:{port}/parent.git", safe="")
        _, events = build_link(_strict(settings), f"git/{url}/main")
        assert events[-1]["phase"] == "failed", events[-1]
        assert "submodules" in events[-1]["message"], events[-1]["message"]
        assert canary.hits == 0, "a submodule URL reached an internal address"
    finally:
        server.kill()
        canary.close()


# ---- what a repository's files point at -----------------------------------------------------------


def test_symlinks_to_host_files_are_refused_and_the_secret_goes_nowhere(settings, git_server, docker_client):
    secret_dir = Path(f"/opt/bltest-secret-{uuid.uuid4().hex[:6]}")
    secret_dir.mkdir()
    secret = f"bltest-secret-{uuid.uuid4().hex}"
    (secret_dir / "token").write_text(secret + "\n")
    try:
        cases = {
            "requirements.txt": str(secret_dir / "token"),
            "environment.yml": "/dev/zero",
            "Dockerfile": str(secret_dir / "token"),
            "binder": str(secret_dir),
        }
        for name, target in cases.items():
            repo = git_server.work / f"symlink-{name.replace('.', '-')}"
            shutil.rmtree(repo, ignore_errors=True)
            repo.mkdir(parents=True)
            (repo / "README.md").write_text("hostile\n")
            os.symlink(target, repo / name)
            subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
            git_server.commit(repo.name, f"{name} points at {target}")
            _, events = build_link(settings, git_server.link(repo.name))
            text = log_text(events)
            assert events[-1]["phase"] == "failed", (name, events[-1])
            assert "outside the repository" in events[-1]["message"], (name, events[-1]["message"])
            assert secret not in text, f"the secret reached the build log through {name}"
        for image in docker_client.images.list():
            assert not any(tag.split(":")[0].endswith("symlink") for tag in image.tags)
        logs = "".join(p.read_text(errors="replace") for p in settings.build_logs_dir.glob("*"))
        assert secret not in logs, "the secret is in a build or worker log"
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)


def test_anonymous_links_do_not_use_the_hosts_git_credentials(settings, tmp_path, monkeypatch):
    """A private repository that root's git credentials can read must not be launchable by anyone."""
    served = tmp_path / "private"
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    (work / "requirements.txt").write_text("six==1.16.0\n")
    subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "private"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "repo.git")], check=True)
    subprocess.run(["git", "-C", str(served / "repo.git"), "update-server-info"], check=True)
    server = PrivateGitServer(served, "alice", "s3cret")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"http://alice:s3cret@127.0.0.1:{server.port}\n")
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[credential]\n\thelper = store --file {credentials}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))  # root's own git would now authenticate
    try:
        url = f"http://127.0.0.1:{server.port}/repo.git"
        assert subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0, "root's git can"
        with pytest.raises(RefNotFoundError, match="not public"):
            resolve_link(url, settings, "main")
        assert server.authorized == 1, "only root's own ls-remote sent the credentials"
    finally:
        server.close()


class PrivateGitServer:
    """Git's dumb HTTP protocol on 127.0.0.1, only for requests with the right Basic credentials."""

    def __init__(self, root: Path, user: str, password: str):
        import base64

        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        outer = self
        self.authorized = 0

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.end_headers()
                    return
                if self.path.endswith("info/refs") or "info/refs?" in self.path:
                    outer.authorized += 1
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
