"""configurable-http-proxy with its npm dependencies, as a tarball installable without the npm registry.

npm installs it globally under a private prefix; the tarball holds that
prefix's ``lib/`` and ``bin/``, so ``tar -C /usr/local -xzf proxy.tar.gz``
gives what ``npm install -g`` gives (the proxy is plain JavaScript: Debian
12's nodejs runs it).
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from binderlite.errors import UnavailableError

PROXY_PACKAGE = "configurable-http-proxy@4.6.3"
NPM_TIMEOUT = 600


def pack_proxy(out: Path, echo: Callable[[str], None] = print) -> Path:
    """Install PROXY_PACKAGE under a temporary prefix with npm and write its tar.gz to ``out``."""
    echo(f"Installing {PROXY_PACKAGE} with npm, for the bundle")
    with tempfile.TemporaryDirectory(prefix="binderlite-npm-") as prefix:
        command = ["npm", "install", "--global", "--prefix", prefix, "--no-audit", "--no-fund", PROXY_PACKAGE]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except FileNotFoundError:
            raise UnavailableError("Exporting the proxy needs npm on this machine (apt-get install npm).") from None
        except subprocess.TimeoutExpired:
            raise UnavailableError(
                f"npm did not finish within {NPM_TIMEOUT} s; is the npm registry reachable?"
            ) from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise UnavailableError(f"npm install {PROXY_PACKAGE} failed:\n{tail}")
        with tarfile.open(out, "w:gz") as tar:
            for folder in ("lib", "bin"):
                tar.add(Path(prefix) / folder, arcname=folder)
    return out
