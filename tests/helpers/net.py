"""Ports and HTTP readiness on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import time

import requests


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(
    url: str,
    timeout: float,
    *,
    headers: dict[str, str] | None = None,
    process: subprocess.Popen | None = None,
    interval: float = 0.2,
) -> bool:
    """True once ``url`` answers 200 within ``timeout`` s; False on timeout or when ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(interval)
    return False
