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
def local_users(*names: str, groups: dict[str, list[str]] | None = None) -> Iterator[dict[str, str]]:
    """Create the accounts (no home, no shell) and ``groups`` ({group: members}); yield ``{name: password}``.

    Accounts and groups are deleted after. PAM's sign-in makes a user's local groups hub groups.
    """
    groups = groups or {}
    assert all(name.startswith("bltest-") for name in [*names, *groups]), (names, groups)
    passwords = {name: secrets.token_urlsafe(12) for name in names}
    try:
        for name in names:
            subprocess.run(["userdel", name], capture_output=True)  # left over from an interrupted run
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        for group, members in groups.items():
            subprocess.run(["groupdel", group], capture_output=True)
            subprocess.run(["groupadd", group], check=True)
            for member in members:
                subprocess.run(["gpasswd", "--add", member, group], check=True, capture_output=True)
        lines = "".join(f"{name}:{password}\n" for name, password in passwords.items())
        subprocess.run(["chpasswd"], input=lines, text=True, check=True)
        yield passwords
    finally:
        for name in names:
            subprocess.run(["userdel", name], capture_output=True)
        for group in groups:
            subprocess.run(["groupdel", group], capture_output=True)
