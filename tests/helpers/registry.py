"""Debian's ``docker-registry`` on 127.0.0.1, its storage and log in a directory of the caller's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.net import wait_for_http


@contextmanager
def docker_registry(root: Path, port: int) -> Iterator[str]:
    """Run a registry with storage under ``root`` on 127.0.0.1:``port``; yield its address; stop it after."""
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    address = f"127.0.0.1:{port}"
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_http(f"http://{address}/v2/", timeout=10, process=proc):
            raise RuntimeError("docker-registry did not start: " + (root / "registry.log").read_text()[-2000:])
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
