"""Check a fetched tree before anything privileged reads it: it stays inside itself and within its size.

The sandbox user wrote the tree; binderlite (root) and repo2docker read it.
``seal`` first gives every entry to root (so no sandboxed process can change
it after the check), then walks it without following links: a symbolic link
whose target leaves the tree, a device, a FIFO or a socket is refused, and so
is a file or a tree larger than the limits. What passes can be read by
anyone with the same result as by the sandbox user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from binderlite.errors import UnsafeRepositoryError


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def seal(root: Path) -> None:
    """Make ``root`` and everything in it root's, not writable by others (links are not followed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), 0, 0)
    os.chown(root, 0, 0)
    os.chmod(root, 0o755)


def check_tree(root: Path, max_file_size: int, max_total_size: int) -> int:
    """Raise UnsafeRepositoryError unless ``root`` is self-contained and small enough; return its size."""
    real_root = os.path.realpath(root)
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            shown = os.path.relpath(path, root)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                target = os.path.realpath(path)
                if target != real_root and not target.startswith(real_root + os.sep):
                    raise UnsafeRepositoryError(
                        f"{shown} is a symbolic link to {os.readlink(path)!r}, outside the repository; "
                        "links that leave the repository are refused."
                    )
            elif stat.S_ISREG(info.st_mode):
                if info.st_size > max_file_size:
                    raise UnsafeRepositoryError(
                        f"{shown} is {_human(info.st_size)}, more than the {_human(max_file_size)} "
                        "a file may have (setting max_file_size)."
                    )
                total += info.st_size
                if total > max_total_size:
                    raise UnsafeRepositoryError(
                        f"The repository is larger than {_human(max_total_size)} (setting max_repo_size)."
                    )
            elif not stat.S_ISDIR(info.st_mode):
                raise UnsafeRepositoryError(f"{shown} is not a file, folder or link (a device, FIFO or socket).")
    return total


def tree_size(root: Path) -> int:
    """Bytes in regular files under ``root`` (links not followed), for watching a fetch as it runs."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
