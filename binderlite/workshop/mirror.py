"""The workshop's package mirror: every Python distribution the prepared images hold, as files, in one folder.

``collect_mirror`` asks each image (a container with no network, as the
notebook user) which Python it has — version, ABI, platform, C library — and
which distributions its venv holds, then downloads into ``mirror_dir``:
wheels for that Python and platform (``pip download --only-binary=:all:
--no-deps`` with the image's tags, so nothing runs on this host), an sdist
only where no wheel exists (fetched from the index's simple page, never
built here), the build tooling a new repository's own install needs
(``BUILD_TOOLING``: its packages stage installs from the index, the shared
tooling stage does not), and the ``extra`` requirement specs with their
dependencies. A file already in the mirror is not fetched again, so running
it twice costs only the look-ups. The folder is what the local index serves
(``workshop/index.py``) and what the bundle carries.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import requests
from packaging import tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from binderlite.builds.packageindex import mirror_path
from binderlite.dockerutil import docker_client
from binderlite.errors import ConfigError
from binderlite.settings import Settings, proxy_environment

DEFAULT_INDEX = "https://pypi.org/simple/"
NB_UID = "1000"  # the notebook user of binderlite's images (builds/buildpacks/python.py)
DEFAULT_VENV = "/srv/venv"
# What a new repository's packages stage may fetch besides its requirements: build backends for its sdists
# and for the repository itself when it is a package (uv builds them in isolation, from the index).
BUILD_TOOLING = ("setuptools", "wheel", "hatchling", "flit-core", "pip")
OLDEST_GLIBC_MINOR = 5  # manylinux1
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)")
SDIST_SUFFIXES = (".tar.gz", ".zip")
DOWNLOAD_TIMEOUT = 60
PROBE_TIMEOUT = 120

# Run inside the image by its venv's Python (3.9 or newer, standard library only): what it is and holds.
PROBE = r"""
import importlib.metadata as md, json, platform, sys, sysconfig
found = set()
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        found.add((name, d.version))
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
    "soabi": sysconfig.get_config_var("SOABI") or "",
    "platform": sysconfig.get_platform(),
    "libc": list(platform.libc_ver()),
    "distributions": sorted(found),
}))
"""


@dataclass(frozen=True)
class Target:
    """One image's Python, as wheels see it: e.g. 3.11, cp311, x86_64, glibc 2.36."""

    python: str
    abi: str
    arch: str
    glibc_minor: int

    def platforms(self) -> list[str]:
        """Platform tags this Python installs, newest first (``manylinux_2_<n>``, their legacy names, linux)."""
        found = []
        for minor in range(self.glibc_minor, OLDEST_GLIBC_MINOR - 1, -1):
            found.append(f"manylinux_2_{minor}_{self.arch}")
            if minor in LEGACY_MANYLINUX:
                found.append(f"{LEGACY_MANYLINUX[minor]}_{self.arch}")
        return [*found, f"linux_{self.arch}"]

    def tags(self) -> set[tags.Tag]:
        version = tuple(int(part) for part in self.python.split("."))
        wanted = set(tags.cpython_tags(version, abis=[self.abi], platforms=self.platforms()))
        return wanted | set(tags.compatible_tags(version, f"cp{version[0]}{version[1]}", self.platforms()))

    def pip_options(self) -> list[str]:
        options = ["--python-version", self.python, "--implementation", "cp", "--abi", self.abi, "--abi", "none"]
        for platform_tag in self.platforms():
            options += ["--platform", platform_tag]
        return options

    def describe(self) -> str:
        return f"Python {self.python} ({self.abi}, {self.arch}, glibc 2.{self.glibc_minor})"


@dataclass(frozen=True)
class ImageContents:
    """What one image's venv holds, and for which Python."""

    image: str
    target: Target
    distributions: tuple[tuple[str, str], ...]  # (name, version)


@dataclass
class MirrorReport:
    """What ``collect_mirror`` did: counts, the mirror's size, and what it could not get."""

    directory: Path
    images: int = 0
    wanted: int = 0  # distinct (Python, distribution, version) wanted from the images
    already: int = 0  # of those, already in the mirror
    wheels: int = 0  # wheels fetched now
    sdists: int = 0  # sdists fetched now (no wheel for that Python)
    missing: list[str] = field(default_factory=list)  # "name==version (Python X.Y)": neither wheel nor sdist
    failed_extras: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    size_bytes: int = 0

    def summary(self) -> str:
        text = (
            f"package mirror {self.directory}: {self.files} files, {self.size_bytes / 1e6:.1f} MB; "
            f"from {self.images} image(s): {self.wanted} distributions, {self.already} already there, "
            f"{self.wheels} wheels and {self.sdists} sdists fetched"
        )
        if self.missing:
            text += f"; not on the index (not mirrored): {', '.join(self.missing)}"
        if self.failed_extras:
            text += f"; extra packages that could not be fetched: {', '.join(self.failed_extras)}"
        return text


def mirror_dir(settings: Settings) -> Path:
    """The folder of the workshop's package mirror (what the local index serves)."""
    return mirror_path(settings)


# ---- what an image holds --------------------------------------------------------


def parse_probe(image: str, output: str) -> ImageContents:
    """An image's probe output (the last JSON line) → its contents; ConfigError when it is not binderlite's."""
    lines = [line for line in output.splitlines() if line.startswith("{")]
    try:
        raw = json.loads(lines[-1])
        libc, libc_version = raw["libc"]
        arch = raw["platform"].rsplit("-", 1)[-1]
        if raw["implementation"] != "cpython" or libc != "glibc" or not raw["platform"].startswith("linux-"):
            raise ValueError(f"{raw['implementation']} on {raw['platform']} with {libc or 'an unknown C library'}")
        major, minor = raw["python"].split(".")
        target = Target(raw["python"], f"cp{major}{minor}", arch, int(libc_version.split(".")[1]))
        dists = tuple(sorted({(str(n), str(v)) for n, v in raw["distributions"]}))
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"Could not read which Python packages {image} holds ({exc}).") from None
    return ImageContents(image, target, dists)


def probe_image(settings: Settings, image: str) -> tuple[ImageContents, list[str]]:
    """Run the probe in ``image`` (no network, the notebook user, its venv's Python); contents and notes."""
    client = docker_client(settings)
    try:
        env = client.images.get(image).attrs.get("Config", {}).get("Env") or []
    except docker.errors.ImageNotFound:
        raise ConfigError(f"Image {image} is not on this Docker daemon; build it first.") from None
    values = dict(item.split("=", 1) for item in env if "=" in item)
    venv = values.get("VENV_DIR", DEFAULT_VENV)
    notes = []
    kernel = values.get("KERNEL_PYTHON_PREFIX", venv)
    if kernel != venv:
        notes.append(f"{image}: the packages of its separate kernel ({kernel}) are not mirrored, only {venv}'s")
    container = client.containers.create(
        image,
        ["-I", "-c", PROBE],
        entrypoint=[f"{venv}/bin/python"],
        user=NB_UID,
        network_mode="none",
        mem_limit="512m",
        pids_limit=64,
    )
    try:
        container.start()
        status = container.wait(timeout=PROBE_TIMEOUT).get("StatusCode", 1)
        output = container.logs(stdout=True, stderr=True)
    except docker.errors.APIError as exc:
        raise ConfigError(
            f"Could not list the Python packages of {image}: it has no Python at {venv}/bin/python "
            f"(is it an image binderlite built?): {exc.explanation or exc}"
        ) from None
    except requests.RequestException:
        raise ConfigError(f"Could not list the Python packages of {image}: no answer in {PROBE_TIMEOUT} s.") from None
    finally:
        container.remove(force=True)
    if status != 0:
        said = output.decode("utf-8", "replace").strip().splitlines()
        raise ConfigError(f"Could not list the Python packages of {image}: {said[-1] if said else status}")
    return parse_probe(image, output.decode("utf-8", "replace")), notes


# ---- what the mirror holds ------------------------------------------------------


def held(directory: Path) -> tuple[dict[tuple[str, Version], set[tags.Tag]], set[tuple[str, Version]]]:
    """The mirror's wheels ((name, version) → their tags) and sdists ((name, version))."""
    wheels: dict[tuple[str, Version], set[tags.Tag]] = {}
    sdists: set[tuple[str, Version]] = set()
    if not directory.is_dir():
        return wheels, sdists
    for path in directory.iterdir():
        try:
            if path.name.endswith(".whl"):
                name, version, _, wheel_tags = parse_wheel_filename(path.name)
                wheels.setdefault((name, version), set()).update(wheel_tags)
            elif path.name.endswith(SDIST_SUFFIXES):
                sdists.add(parse_sdist_filename(path.name))
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
    return wheels, sdists


def wanted_now(
    directory: Path, target: Target, distributions: Iterable[tuple[str, str]]
) -> tuple[list[tuple[str, str]], int]:
    """The distributions the mirror lacks for ``target`` (a wheel for it, or an sdist), and how many it has."""
    wheels, sdists = held(directory)
    compatible = target.tags()
    lacking, have = [], 0
    for name, version in distributions:
        try:
            key = (canonicalize_name(name), Version(version))
        except InvalidVersion:
            lacking.append((name, version))
            continue
        if wheels.get(key, set()) & compatible or key in sdists:
            have += 1
        else:
            lacking.append((name, version))
    return lacking, have


def no_match(output: str) -> set[str]:
    """Canonical names pip says it found no distribution for."""
    return {canonicalize_name(re.split(r"[=<>!~\[; ]", m)[0]) for m in NO_MATCH.findall(output)}


def directory_size(directory: Path) -> tuple[int, int]:
    files = [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


# ---- fetching ---------------------------------------------------------------------


class Fetcher:
    """pip download (wheels) and the simple index (sdists), through this host's proxy and CA."""

    def __init__(self, settings: Settings, directory: Path, echo: Callable[[str], None]):
        self.settings, self.directory, self.echo = settings, directory, echo
        self.index = settings.package_index_url or DEFAULT_INDEX
        self.env = {**os.environ, **proxy_environment(settings), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def pip_download(self, target: Target, specs: list[str], deps: bool) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(self.directory)]
        argv += ["--only-binary=:all:", *target.pip_options(), "--cert", self.settings.ca_bundle]
        if self.settings.package_index_url:
            argv += ["--index-url", self.settings.package_index_url]
        if not deps:
            argv.append("--no-deps")
        return subprocess.run([*argv, *specs], capture_output=True, text=True, env=self.env)

    def wheels(self, target: Target, pins: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]]]:
        """Download wheels for ``pins`` (one pip per round; a pin with no wheel leaves the next round);
        return how many came and the pins that have no wheel for ``target``."""
        remaining, without = list(pins), []
        while remaining:
            result = self.pip_download(target, [f"{n}=={v}" for n, v in remaining], deps=False)
            if result.returncode == 0:
                return len(remaining), without
            failed = no_match(result.stdout + result.stderr)
            if not failed:
                raise ConfigError(f"pip could not download wheels for {target.describe()}: {_last_error(result)}")
            without += [pin for pin in remaining if canonicalize_name(pin[0]) in failed]
            remaining = [pin for pin in remaining if canonicalize_name(pin[0]) not in failed]
        return 0, without

    def sdist(self, name: str, version: str) -> bool:
        """Fetch ``name``'s sdist of ``version`` from the simple index (no code of it runs); False if none."""
        page_url = urllib.parse.urljoin(self.index.rstrip("/") + "/", canonicalize_name(name) + "/")
        session = requests.Session()
        session.verify = self.settings.ca_bundle
        session.proxies = {k.lower().removesuffix("_proxy"): v for k, v in proxy_environment(self.settings).items()}
        session.proxies.pop("no", None)
        try:
            page = session.get(page_url, timeout=DOWNLOAD_TIMEOUT)
            if page.status_code != 200:
                return False
            for href in re.findall(r'href="([^"]+)"', page.text):
                url = urllib.parse.urljoin(page_url, href.replace("&amp;", "&"))
                filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
                try:
                    if not filename.endswith(SDIST_SUFFIXES) or parse_sdist_filename(filename) != (
                        canonicalize_name(name),
                        Version(version),
                    ):
                        continue
                except (InvalidSdistFilename, InvalidVersion):
                    continue
                return self._save(session, url, filename, urllib.parse.urlsplit(url).fragment)
        except requests.RequestException as exc:
            self.echo(f"could not fetch the sdist of {name}=={version}: {exc}")
        return False

    def _save(self, session: requests.Session, url: str, filename: str, fragment: str) -> bool:
        """Download to a hidden partial file, check the index's hash (``sha256=…``), then give it its name."""
        if "/" in filename or filename.startswith("."):
            return False
        partial = self.directory / f".{filename}.part"
        algorithm, _, expected = fragment.partition("=")
        digest = hashlib.new(algorithm) if algorithm in hashlib.algorithms_guaranteed and expected else None
        with session.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT) as answer:
            if answer.status_code != 200:
                return False
            with open(partial, "wb") as fh:
                for block in answer.iter_content(1 << 20):
                    fh.write(block)
                    if digest:
                        digest.update(block)
        if digest and digest.hexdigest() != expected.lower():
            partial.unlink()
            self.echo(f"{filename}: its {algorithm} is not the one the index gives; not mirrored")
            return False
        os.chmod(partial, 0o644)
        os.replace(partial, self.directory / filename)
        return True


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["pip failed"])[-1]


def collect_mirror(
    settings: Settings, images: list[str], extra: list[str], echo: Callable[[str], None] = print
) -> MirrorReport:
    """Fill the mirror with what ``images`` hold (for their Pythons), the build tooling and ``extra``."""
    directory = mirror_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # the index runs as the service user: it reads the folder,
    directory.parent.chmod(directory.parent.stat().st_mode | 0o011)  # and passes through the workshop's
    report = MirrorReport(directory)
    fetcher = Fetcher(settings, directory, echo)
    targets: dict[Target, set[tuple[str, str]]] = {}
    for image in dict.fromkeys(images):
        contents, notes = probe_image(settings, image)
        report.images += 1
        report.notes += notes
        targets.setdefault(contents.target, set()).update(contents.distributions)
        echo(f"{image}: {len(contents.distributions)} distributions on {contents.target.describe()}")
    for target, distributions in targets.items():
        lacking, have = wanted_now(directory, target, sorted(distributions))
        report.wanted += len(distributions)
        report.already += have
        if lacking:
            echo(f"fetching {len(lacking)} distributions for {target.describe()}")
            fetched, without = fetcher.wheels(target, lacking)
            report.wheels += fetched
            for name, version in without:
                if fetcher.sdist(name, version):
                    report.sdists += 1
                else:
                    report.missing.append(f"{name}=={version} (Python {target.python})")
        wanted = [*BUILD_TOOLING, *extra]
        result = fetcher.pip_download(target, wanted, deps=True)
        if result.returncode != 0:
            for spec in wanted:  # one by one, to name the ones that fail
                if fetcher.pip_download(target, [spec], deps=True).returncode != 0:
                    report.failed_extras.append(f"{spec} (Python {target.python})")
    for partial in directory.glob(".*.part"):
        partial.unlink()
    for path in directory.iterdir():
        path.chmod(0o644)
    report.files, report.size_bytes = directory_size(directory)
    echo(report.summary())
    return report
