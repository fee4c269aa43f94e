"""``apt.txt``: Debian package names and nothing else, because each one lands in a root ``RUN`` line.

repo2docker checks only that a line *starts* like a package name, then
pastes it into ``apt-get install`` run as root at build time, so
``less; chmod 4755 /bin/bash`` passes and runs. ``check_apt_packages``
accepts a line only if it is a whole package name (Debian policy:
``[a-z0-9][a-z0-9+.-]+``), optionally ``=version``; ``#`` comments and blank
lines are allowed. Anything else fails the build, naming the line.
"""

from __future__ import annotations

import re

from binderlite.errors import UnsafeRepositoryError

PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[0-9][A-Za-z0-9.+~:-]*)?")
LINE_END = re.compile(r"\r\n|\r|\n")  # as Python reads the file for repo2docker; other controls stay in the line
SHOWN = 80  # characters of a refused line repeated in the message


def check_apt_packages(text: str) -> list[str]:
    """The packages ``apt.txt`` lists, in order, each once; UnsafeRepositoryError at the first bad line."""
    packages: list[str] = []
    for number, line in enumerate(LINE_END.split(text), start=1):
        entry = line.partition("#")[0].strip()
        if not entry:
            continue
        if not PACKAGE.fullmatch(entry):
            shown = entry if len(entry) <= SHOWN else entry[:SHOWN] + "…"
            raise UnsafeRepositoryError(
                f"apt.txt line {number} is not a Debian package name: {shown!r}. "
                "List one package per line (e.g. `curl` or `curl=7.88.1-10+deb12u5`); "
                "commands belong in postBuild."
            )
        if entry not in packages:
            packages.append(entry)
    return packages
