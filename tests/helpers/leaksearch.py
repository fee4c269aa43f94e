"""Search everywhere a secret could have been left: files, folders, gzip blobs, ``docker save`` streams, text.

Each search returns the number of occurrences of any of the needles (a
secret in its plain, URL-escaped and basic-auth forms); ``Tally`` keeps the
count per place and prints the table the leak test reports.
"""

from __future__ import annotations

import base64
import gzip
import json
import urllib.parse
import zlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1024 * 1024


def needles(token: str, username: str, extra: Iterable[str] = ()) -> list[bytes]:
    """The forms a token takes on its way: plain, URL-escaped, and inside a basic-auth header."""
    forms = {token, urllib.parse.quote(token, safe=""), base64.b64encode(f"{username}:{token}".encode()).decode()}
    return [form.encode() for form in (*forms, *extra)]


def count_each(chunks: Iterable[bytes], needles: list[bytes]) -> list[int]:
    """Occurrences of each needle in a byte stream (across chunk boundaries)."""
    overlap = max(len(n) for n in needles) - 1
    found, tail = [0] * len(needles), b""
    for chunk in chunks:
        data = tail + chunk
        # count only matches that end in the new part, so none is counted twice
        for i, needle in enumerate(needles):
            start = 0
            while (at := data.find(needle, start)) != -1:
                if at + len(needle) > len(tail):
                    found[i] += 1
                start = at + 1
        tail = data[-overlap:] if overlap else b""
    return found


def count_stream(chunks: Iterable[bytes], needles: list[bytes]) -> int:
    """Occurrences of any of the needles in a byte stream."""
    return sum(count_each(chunks, needles))


def file_chunks(path: Path) -> Iterable[bytes]:
    """The file's bytes; a gzip or zlib file also decompressed (registry blobs are gzip layers)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head == b"\x1f\x8b":
            try:
                with gzip.open(fh) as gz:
                    yield from iter(lambda: gz.read(CHUNK), b"")
                return
            except (OSError, EOFError, zlib.error):
                fh.seek(0)
        yield from iter(lambda: fh.read(CHUNK), b"")


def count_tree(root: Path, needles: list[bytes], newer_than: float = 0.0) -> tuple[int, int]:
    """(occurrences, files searched) under ``root`` (files modified after ``newer_than`` only)."""
    found = files = 0
    for path in sorted(Path(root).rglob("*")):
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_mtime < newer_than:
                continue
            found += count_stream(file_chunks(path), needles)
            files += 1
        except (FileNotFoundError, PermissionError):
            continue
    return found, files


def count_text(text: str | bytes | object, needles: list[bytes]) -> int:
    data = text if isinstance(text, bytes) else (text if isinstance(text, str) else json.dumps(text)).encode()
    return count_stream([data], needles)


class Tally:
    """Occurrences per place, and what was searched there."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, str]] = []

    def add(self, place: str, hits: int, searched: str) -> None:
        self.rows.append((place, hits, searched))

    def report(self) -> str:
        width = max(len(p) for p, _, _ in self.rows)
        lines = [f"{'place'.ljust(width)}  hits  searched"]
        lines += [f"{p.ljust(width)}  {h:4d}  {s}" for p, h, s in self.rows]
        return "\n".join(lines)

    def leaks(self) -> dict[str, int]:
        return {p: h for p, h, _ in self.rows if h}
