"""The web app served as in production (gunicorn with binderlite's config) for tests that need only it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.net import free_port, wait_for_http
from tests.helpers.stack import stop_process

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def gunicorn_web(environment: dict[str, str], log_path: Path) -> Iterator[str]:
    """gunicorn on a free 127.0.0.1 port with ``environment`` (BINDERLITE_* settings); yields its base URL.

    An empty config file is used, so only ``environment`` and the defaults count. The output goes to
    ``log_path``; a server that does not answer fails the test with the end of that log.
    """
    config = log_path.parent / "binderlite-web.toml"
    config.write_text("")
    port = free_port()
    env = {
        **os.environ,
        **environment,
        "PYTHONPATH": str(ROOT),
        "BINDERLITE_CONFIG": str(config),
        "BINDERLITE_WEB_HOST": "127.0.0.1",
        "BINDERLITE_WEB_PORT": str(port),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(gunicorn), "-c", str(ROOT / "binderlite/web/gunicorn_conf.py"), "binderlite.web.wsgi:app"],
            cwd=str(ROOT),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            if not wait_for_http(base + "/versions", timeout=30, process=proc):
                state = "exited" if proc.poll() is not None else "did not answer"
                pytest.fail(f"gunicorn {state}: " + log_path.read_text()[-3000:])
            yield base
        finally:
            stop_process(proc, timeout=40)
