"""binderlite and every Python dependency as wheels, for ``pip install --no-index`` on a laptop with no network.

binderlite's own wheel is built from its source tree (binderlite runs from
a clone, installed editable or not); the dependencies at the versions of
``constraints.txt``, the ones binderlite is tested with. The wheels are for
this machine's Python and platform: export on a Debian 12 machine, as the
laptops are.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import binderlite
from binderlite.errors import ConfigError, UnavailableError

PIP_TIMEOUT = 1800


def source_tree() -> Path:
    """The clone binderlite runs from (the folder with setup.py and constraints.txt)."""
    root = Path(binderlite.__file__).resolve().parent.parent
    if not (root / "setup.py").is_file() or not (root / "constraints.txt").is_file():
        raise ConfigError(
            f"binderlite runs from {root}, not from its source tree, so it cannot put itself in a bundle; "
            "export from a clone of binderlite (pip install -e <clone>)."
        )
    return root


def build_wheels(dest: Path, echo: Callable[[str], None] = print) -> list[Path]:
    """Wheels of binderlite and all its dependencies into ``dest``; return them."""
    root = source_tree()
    dest.mkdir(parents=True, exist_ok=True)
    echo(f"Building wheels of binderlite ({root}) and its dependencies (constraints.txt)")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    command += ["--wheel-dir", str(dest), "--constraint", str(root / "constraints.txt"), str(root)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise UnavailableError(
            f"pip wheel did not finish within {PIP_TIMEOUT} s; is the package index reachable?"
        ) from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise UnavailableError(f"pip wheel failed (is the package index reachable?):\n{tail}")
    return sorted(dest.glob("*.whl"))
