"""A real LDAP directory for sign-in tests: Debian's slapd on a free 127.0.0.1 port, its own config and data.

``running_directory`` writes a ``slapd.conf`` (the mdb backend, the core,
cosine, inetorgperson and nis schemas) in a temp dir, loads the seed with
``slapadd`` before the server starts, runs ``slapd -d 0`` in the foreground
(never as a system service) and stops it by its pid. The seed: people under
``ou=people``, groups (``groupOfNames``) under ``ou=groups``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.net import free_port
from tests.helpers.stack import stop_process

SUFFIX = "dc=bltest,dc=example"
ADMIN_DN = f"cn=admin,{SUFFIX}"
SLAPD = "/usr/sbin/slapd"


@dataclass(frozen=True)
class Directory:
    """A running directory: where it answers and how its people are named."""

    url: str
    port: int
    suffix: str = SUFFIX

    @property
    def bind_dn_template(self) -> str:
        return f"uid={{username}},ou=people,{self.suffix}"

    @property
    def group_base(self) -> str:
        return f"ou=groups,{self.suffix}"


def seed_ldif(users: dict[str, str], groups: dict[str, list[str]]) -> str:
    """The directory's entries: the base, ``users`` (name → password) and ``groups`` (name → member names)."""
    entries = [
        f"dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: bltest\ndc: bltest",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for name, password in users.items():
        entries.append(
            f"dn: uid={name},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name.title()}\n"
            f"sn: {name.title()}\nuserPassword: {password}"
        )
    for group, members in groups.items():
        lines = [f"dn: cn={group},ou=groups,{SUFFIX}", "objectClass: groupOfNames", f"cn: {group}"]
        lines += [f"member: uid={m},ou=people,{SUFFIX}" for m in members]
        entries.append("\n".join(lines))
    return "\n\n".join(entries) + "\n"


def _config(folder: Path) -> str:
    schemas = "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in ("core", "cosine", "inetorgperson", "nis"))
    return (
        f"{schemas}"
        f"pidfile {folder}/slapd.pid\n"
        f"argsfile {folder}/slapd.args\n"
        "modulepath /usr/lib/ldap\n"
        "moduleload back_mdb\n"
        # people may read the directory once bound; nobody reads passwords
        "access to attrs=userPassword by anonymous auth by * none\n"
        # the groups are public (binderlite checks the access rules' groups at start, anonymously)
        f'access to dn.subtree="ou=groups,{SUFFIX}" by * read\n'
        "access to * by users read by * none\n"
        "database mdb\n"
        "maxsize 16777216\n"
        f"suffix {SUFFIX}\n"
        f"rootdn {ADMIN_DN}\n"
        f"directory {folder}/data\n"
    )


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def running_directory(folder: Path, users: dict[str, str], groups: dict[str, list[str]]) -> Iterator[Directory]:
    """slapd seeded with ``users`` and ``groups`` on a free port, answering; stopped (by pid) afterwards."""
    if not shutil.which(SLAPD):
        raise RuntimeError("slapd is not installed: scripts/install-debian.sh with BINDERLITE_WITH_TEST_TOOLS=1")
    (folder / "data").mkdir(parents=True)
    conf = folder / "slapd.conf"
    conf.write_text(_config(folder))
    (folder / "seed.ldif").write_text(seed_ldif(users, groups))
    subprocess.run(["slapadd", "-f", str(conf), "-l", str(folder / "seed.ldif")], check=True, capture_output=True)
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = open(folder / "slapd.log", "wb")
    proc = subprocess.Popen([SLAPD, "-d", "0", "-f", str(conf), "-h", url + "/"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("slapd did not start:\n" + (folder / "slapd.log").read_text()[-2000:])
            time.sleep(0.1)
        yield Directory(url=url, port=port)
    finally:
        stop_process(proc, timeout=10)
        log.close()
