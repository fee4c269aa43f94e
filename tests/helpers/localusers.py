"""Local accounts for sign-in tests (PAM): made with ``useradd``/``chpasswd``, removed afterwards.

Every name starts with ``bltest-``; the password is random per test run and
only ever given to ``chpasswd`` on stdin and to the browser's login form.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_users(*names: str) -> Iterator[dict[str, str]]:
    """Create the accounts (no home, no shell); yield ``{name: password}``; delete them after."""
    assert all(name.startswith("bltest-") for name in names), names
    passwords = {name: secrets.token_urlsafe(12) for name in names}
    try:
        for name in names:
            subprocess.run(["userdel", name], capture_output=True)  # left over from an interrupted run
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        lines = "".join(f"{name}:{password}\n" for name, password in passwords.items())
        subprocess.run(["chpasswd"], input=lines, text=True, check=True)
        yield passwords
    finally:
        for name in names:
            subprocess.run(["userdel", name], capture_output=True)
