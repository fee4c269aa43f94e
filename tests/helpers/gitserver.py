"""Fixture repositories served as git repos over HTTP on 127.0.0.1 (git's dumb HTTP protocol)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "repos"
GIT = [
    "git",
    "-c",
    "user.name=binderlite tests",
    "-c",
    "user.email=tests@binderlite.invalid",
    "-c",
    "init.defaultBranch=main",
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class GitServer:
    """Bare repositories under ``root``, served at ``http://127.0.0.1:<port>/<name>.git``."""

    def __init__(self, root: Path):
        self.root = root
        self.work = root / "work"
        self.served = root / "served"
        self.served.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(QuietHandler, directory=str(self.served))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def link(self, name: str, ref: str = "main") -> str:
        """The ``git/<escaped url>/<ref>`` link path for a served repository."""
        return f"git/{quote(self.url(name), safe='')}/{ref}"

    def add_fixture(self, fixture: str, name: str | None = None) -> str:
        """Publish ``tests/fixtures/repos/<fixture>`` as repository ``name``; return its commit."""
        name = name or fixture
        work = self.work / name
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(FIXTURES / fixture, work)
        self.work_tree(name)
        return self.commit(name, "initial commit")

    def work_tree(self, name: str) -> Path:
        """The work tree of repository ``name``, a git repository (made if new); publish it with ``commit``."""
        work = self.work / name
        if not (work / ".git").exists():
            work.mkdir(parents=True, exist_ok=True)
            subprocess.run([*GIT, "init", "-q"], cwd=work, check=True)
        return work

    def commit(self, name: str, message: str) -> str:
        """Commit everything in the work tree of ``name`` and publish it; return the commit."""
        work = self.work / name
        subprocess.run([*GIT, "add", "-A"], cwd=work, check=True)
        subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", message], cwd=work, check=True)
        bare = self.served / f"{name}.git"
        if bare.exists():
            shutil.rmtree(bare)
        subprocess.run([*GIT, "clone", "-q", "--bare", str(work), str(bare)], check=True)
        subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True
        ).stdout.strip()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
