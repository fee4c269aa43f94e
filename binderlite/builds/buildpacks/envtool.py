"""Run inside a build's package stage (any Python 3 from 3.9 on, standard library only).

``install``  runs an installer (uv, or pip for a Python 2 kernel); when it
             fails, the last line says which requirement, on which Python, and
             why (not on the index, needs another Python, no wheel and the
             build failed or had no compiler), so no build ends with a partial
             environment and an unexplained error.
``snapshot`` records every file of the environment folders (path, mode, hash)
             before the repository's packages go in.
``delta``    writes what changed since the snapshot to one folder (and the
             removed paths to a list), so the image gets the shared tooling
             layer plus only the repository's packages; and copies in the
             shared libraries that built extensions link but the base image
             lacks (the toolchain's libxml2, libhdf5, …), since the toolchain
             itself never reaches the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys

REMOVED = "removed.txt"
MIRROR_VARIABLE = "BINDERLITE_PACKAGE_MIRROR"  # set where the build installs from the workshop's mirror
LIBS = "libs"
BASE_SONAMES = "/usr/local/share/binderlite/base-sonames.txt"
SYSTEM_LIB_DIRS = ("/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/")
LDD_LINE = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-f]+\)$")
LDD_MISSING = re.compile(r"^\s*(\S+) => not found$")


# ---- install ------------------------------------------------------------------
def reason(output: str, python: str, mirror: bool = False) -> tuple[str, str]:
    """(requirement, why) from uv's or pip's output when an install failed; the requirement may be ''.

    ``mirror``: the build installs from the workshop's package mirror, so what is not there is named so.
    """
    needs = r"it needs Python {}"
    lacks = "the workshop's package mirror lacks it (add it to the workshop's extra packages and prepare again online)"
    if mirror:
        missing = re.search(
            r"Because (\S+?) was not found in the package registry|No matching distribution found for (\S+)"
            r"|Because there (?:is|are) no versions? of (\S+?)(?: and|,|$)",
            output,
            re.MULTILINE,
        )
        if missing:
            return next(g for g in missing.groups() if g), lacks
        if re.search(r"Connection refused|error sending request for url|Failed to download", output):
            return "", "the workshop's package index did not answer (`binderlite up` runs it where a mirror exists)"
    patterns = [  # (pattern, group of the requirement, why: text, or a format of group 2)
        (r"Because (\S+?) was not found in the package registry", 1, "it is not on the package index"),
        (r"Because there (?:is|are) no versions? of (\S+?)(?: and|,|$)", 1, "that version is not on the package index"),
        (r"does not satisfy Python(\S+?) and (\S+?) depends on", 2, None),
        (r"Package '(\S+?)' requires a different Python: \S+ not in '([^']+)'", 1, None),
        (r"Because (\S+?) has invalid metadata", 1, "its metadata is too old for the installer (an old release)"),
        (r"(\S+?) has no (?:usable )?wheels? with a matching Python", 1, f"it has no wheel for Python {python}"),
        (r"No matching distribution found for (\S+)", 1, f"no release of it installs on Python {python}"),
        (r"Failed to download `(\S+?)`", 1, "it could not be downloaded (the package index did not answer)"),
    ]
    for pattern, group, why in patterns:
        match = re.search(pattern, output, re.MULTILINE)
        if match:
            other = match.group(3 - group) if match.re.groups > 1 else ""
            return match.group(group), why or needs.format(other)
    built = re.search(
        r"Failed to build `(\S+?)`|Failed building wheel for (\S+)|Running setup.py install for (\S+)", output
    )
    if built:
        name = next(g for g in built.groups() if g)
        if shutil.which("gcc") is None:
            return name, (
                f"it has no wheel for Python {python}, and building it needs a compiler, which this build lacks "
                "(setting toolchain_packages; `binderlite base-image` makes the toolchain image)"
            )
        return name, f"it has no wheel for Python {python}, and building it from source failed (see the log above)"
    unreachable = re.search(r"error sending request for url \((\S+?)\)", output)
    if unreachable:  # a URL requirement (git+https, an archive) or an index this build cannot reach
        return "", f"{unreachable.group(1)} could not be fetched: this machine cannot reach that host"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith(("cause:", "error:", "ERROR:"))]
    return "", (causes[-1] if causes else (lines[-1] if lines else "the installer failed"))


def install(argv: list[str]) -> int:
    """``install <python version> <what> <extra message> -- <command…>``"""
    python, what, extra = argv[0], argv[1], argv[2]
    command = argv[argv.index("--") + 1 :]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace")
        output.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    if proc.wait() == 0:
        return 0
    name, why = reason("".join(output), python, mirror=bool(os.environ.get(MIRROR_VARIABLE)))
    named = f"{name} (from {what})" if name else f"the requirements of {what}"
    print(f"binderlite: error: {named} could not be installed on Python {python}: {why}.{extra}", flush=True)
    return 1


# ---- snapshot and delta -----------------------------------------------------------
def _entries(root: str, known: dict | None = None):
    """(path, [kind, mode, content, size, mtime]) under ``root``; a file whose size and mtime match ``known``
    is not read again (uv writes every file it installs anew, so a changed file has a new mtime)."""
    known = known or {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                yield path, ["l", 0, os.readlink(path)]
            elif stat.S_ISDIR(info.st_mode):
                yield path, ["d", mode, ""]
            elif stat.S_ISREG(info.st_mode):
                before = known.get(path)
                if before and before[:2] == ["f", mode] and before[3:] == [info.st_size, info.st_mtime_ns]:
                    yield path, before
                    continue
                digest = hashlib.sha1()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                yield path, ["f", mode, digest.hexdigest(), info.st_size, info.st_mtime_ns]


def snapshot(argv: list[str]) -> int:
    """``snapshot <manifest> <root…>``"""
    manifest, roots = argv[0], sorted(set(argv[1:]))
    entries = {path: entry for root in roots if os.path.isdir(root) for path, entry in _entries(root)}
    with open(manifest, "w") as fh:
        json.dump(entries, fh)
    return 0


def delta(argv: list[str]) -> int:
    """``delta <manifest> <out> <root…>``: changed files under out/<root's name>/, removed paths, libraries."""
    manifest, out, roots = argv[0], argv[1], sorted(set(argv[2:]))
    with open(manifest) as fh:
        before = json.load(fh)
    _clear(out)  # only what this step writes, whatever an earlier step left there
    os.makedirs(os.path.join(out, LIBS))
    now, changed = {}, []
    for root in roots:
        target = os.path.join(out, os.path.basename(root))
        os.makedirs(target, exist_ok=True)
        if not os.path.isdir(root):
            continue
        for path, entry in _entries(root, before):
            now[path] = entry
            if (before.get(path) or [])[:3] == entry[:3]:
                continue
            dest = os.path.join(target, os.path.relpath(path, root))
            if entry[0] == "d":
                os.makedirs(dest, exist_ok=True)
                os.chmod(dest, entry[1])
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if entry[0] == "l":
                os.symlink(entry[2], dest)
            else:
                shutil.copy2(path, dest)
                changed.append(path)
    removed = sorted(path for path in before if path not in now)
    with open(os.path.join(out, REMOVED), "w") as fh:
        fh.writelines(path + "\n" for path in removed)
    copied = copy_libraries(changed, roots, os.path.join(out, LIBS))
    print(
        f"binderlite: the repository's packages: {len(changed)} files written, {len(removed)} removed"
        + (f"; libraries copied from the build stage: {', '.join(copied)}" if copied else ""),
        flush=True,
    )
    return 0


def _clear(folder: str) -> None:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def copy_libraries(files: list[str], roots: list[str], out: str) -> list[str]:
    """Copy the system libraries that new ELF files link and the base image lacks; return their names."""
    if not os.path.exists(BASE_SONAMES):
        return []  # no toolchain stage: everything that links resolved against the base itself
    with open(BASE_SONAMES) as fh:
        base = set(fh.read().split())
    wanted: dict[str, str] = {}
    for path in files:
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        result = subprocess.run(["/usr/bin/ldd", path], capture_output=True, text=True, env={})
        for line in result.stdout.splitlines():
            missing = LDD_MISSING.match(line)
            if missing:
                print(f"binderlite: warning: {path} links {missing.group(1)}, which is nowhere", flush=True)
            found = LDD_LINE.match(line)
            if not found:
                continue
            soname, lib = found.groups()
            if soname in base or not lib.startswith(SYSTEM_LIB_DIRS) or lib.startswith(tuple(roots)):
                continue
            wanted[soname] = os.path.realpath(lib)
    for soname, lib in sorted(wanted.items()):
        shutil.copy2(lib, os.path.join(out, soname))
    return sorted(wanted)


def main(argv: list[str]) -> int:
    commands = {"install": install, "snapshot": snapshot, "delta": delta}
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
