"""The Debian 12 packages a laptop with nothing needs, with their whole dependency closure, as .deb files.

apt computes the closure as on a machine with no package installed: its
own sources list (bookworm, its updates and security, and trixie pinned at
100 for ``docker-buildx`` alone, as ``scripts/install-debian.sh`` does; it
is taken without its dependencies, which bookworm's satisfy), its own
package lists, an empty dpkg status and its own download folder. This
machine's dpkg state, lists and cache are never touched, and the closure
does not depend on what happens to be installed here. The folder gets a
flat repository index (``Packages``, ``Release``) and the list of packages
asked for (``wanted.txt``): ``install.sh`` points apt at that folder alone
and installs the wanted packages, so apt takes from it only what the laptop
lacks or has older.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from binderlite.builds.baseimage import DEBIAN_MIRROR
from binderlite.errors import UnavailableError

# npm is left out: the proxy comes prebuilt (proxy.tar.gz), and Debian's npm pulls hundreds of node-* packages.
NOT_BUNDLED = {"npm"}
FROM_TRIXIE = ("docker-buildx",)
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
APT_TIMEOUT = 1800


def wanted_packages(package_list: Path) -> list[str]:
    """The names in ``scripts/debian-packages.txt`` (comments dropped) that the bundle carries."""
    names = []
    for line in package_list.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name and name not in NOT_BUNDLED:
            names.append(name)
    return names


def sources_text(mirror: str = DEBIAN_MIRROR) -> str:
    entry = "Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\nSigned-By: " + KEYRING + "\n"
    return "\n".join(
        [
            entry.format(uri=mirror, suites="bookworm bookworm-updates"),
            entry.format(uri=SECURITY_MIRROR, suites="bookworm-security"),
            entry.format(uri=mirror, suites="trixie"),
        ]
    )


PREFERENCES = "Package: *\nPin: release n=trixie\nPin-Priority: 100\n"


def apt_options(root: Path, archives: Path) -> list[str]:
    """apt options that confine it to ``root`` (sources, lists, status, cache) and ``archives``."""
    options = {
        "Dir::Etc::SourceList": "/dev/null",
        "Dir::Etc::SourceParts": str(root / "sources.list.d"),
        "Dir::Etc::Preferences": str(root / "preferences"),
        "Dir::Etc::PreferencesParts": str(root / "preferences.d"),
        "Dir::State::Lists": str(root / "lists"),
        "Dir::State::status": str(root / "status"),
        "Dir::State::extended_states": str(root / "extended_states"),
        "Dir::Cache": str(root / "cache"),
        "Dir::Cache::archives": str(archives),
        "Debug::NoLocking": "true",
        "APT::Sandbox::User": "root",
        "APT::Install-Recommends": "false",
    }
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


def download_closure(packages: list[str], dest: Path, echo: Callable[[str], None] = print) -> list[Path]:
    """Download ``packages`` (and FROM_TRIXIE) with every dependency into ``dest``; return the .deb files."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "partial").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="binderlite-apt-") as work:
        root = Path(work)
        for folder in ("sources.list.d", "preferences.d", "lists/partial", "cache"):
            (root / folder).mkdir(parents=True)
        (root / "sources.list.d" / "debian.sources").write_text(sources_text())
        (root / "preferences").write_text(PREFERENCES)
        (root / "status").write_text("")
        options = apt_options(root, dest)
        echo("Reading Debian 12's package lists (in a private apt state, not this machine's)")
        _apt([*options, "update"], "apt-get update")
        echo(f"Downloading the Debian packages {' '.join(packages)} with their dependencies")
        _apt([*options, "install", "--download-only", "--yes", *packages], "apt-get install --download-only")
        # Alone, without its dependencies: asked for with its own, apt would take trixie's libc6 too.
        echo(f"Downloading {' '.join(FROM_TRIXIE)} from trixie")
        _apt([*options, "download", *(f"{name}/trixie" for name in FROM_TRIXIE)], "apt-get download", cwd=dest)
    (dest / "partial").rmdir()
    debs = sorted(dest.glob("*.deb"))
    write_index(dest, debs, packages + list(FROM_TRIXIE))
    return sorted(dest.iterdir())


def write_index(folder: Path, debs: list[Path], wanted: list[str]) -> None:
    """A flat apt repository's ``Packages`` and ``Release`` for ``debs``, and ``wanted.txt``."""
    stanzas = []
    for deb in debs:
        data = deb.read_bytes()
        fields = control_of(data).rstrip("\n")
        stanzas.append(
            f"{fields}\nFilename: ./{deb.name}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(stanzas).encode()
    (folder / "Packages").write_bytes(packages)
    digest = hashlib.sha256(packages).hexdigest()
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
    release = f"Origin: binderlite workshop bundle\nDate: {date}\nSHA256:\n {digest} {len(packages)} Packages\n"
    (folder / "Release").write_text(release)
    (folder / "wanted.txt").write_text("".join(f"{name}\n" for name in wanted))


def control_of(deb: bytes) -> str:
    """The ``control`` file of a .deb (an ar archive holding control.tar.{gz,xz})."""
    if not deb.startswith(b"!<arch>\n"):
        raise UnavailableError("a downloaded Debian package is not an ar archive")
    offset = 8
    while offset + 60 <= len(deb):
        name = deb[offset : offset + 16].decode().strip().rstrip("/")
        size = int(deb[offset + 48 : offset + 58].decode().strip())
        body = deb[offset + 60 : offset + 60 + size]
        if name.startswith("control.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as control:
                for member in control:
                    if member.name in ("./control", "control"):
                        extracted = control.extractfile(member)
                        assert extracted is not None
                        return extracted.read().decode()
        offset += 60 + size + (size % 2)
    raise UnavailableError("a downloaded Debian package has no control file")


def _apt(args: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(
            ["apt-get", "-q", *args],
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT,
            env={"LC_ALL": "C.UTF-8", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            cwd=cwd,
        )
    except FileNotFoundError:
        raise UnavailableError("Exporting the Debian packages needs apt-get (export on a Debian 12 machine).") from None
    except subprocess.TimeoutExpired:
        raise UnavailableError(
            f"{what} did not finish within {APT_TIMEOUT} s; is the Debian mirror reachable?"
        ) from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise UnavailableError(f"{what} failed (is the Debian mirror reachable?):\n{tail}")
