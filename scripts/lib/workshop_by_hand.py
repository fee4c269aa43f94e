"""Prepare a small workshop by hand, for scripts/check-offline-laptop.sh: build each git URL, write the manifest.

    python scripts/lib/workshop_by_hand.py URL[@REF] ...   (settings from BINDERLITE_* as usual)

Each URL is built with `binderlite build`'s own function and recorded in the
workshop manifest (link → commit → image) with its bare copy
repos/<name>.git, which the caller makes. Prints each prepared link.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from binderlite.cli import build_image
from binderlite.settings import load_settings
from binderlite.workshop.manifest import Manifest, PreparedLink, save_manifest


def main(urls: list[str]) -> None:
    settings = load_settings(None).with_overrides(allow_local_repos=True)
    prepared = []
    for arg in urls:
        url, _, ref = arg.partition("@")
        resolved, image = build_image(settings, url, ref or "HEAD")
        link = f"{resolved.provider}/{resolved.spec}"
        bare = "repos/" + urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        prepared.append(PreparedLink.from_resolved(link, resolved, image, bare))
        print(link)
    save_manifest(settings, Manifest(links=tuple(prepared), attendees=10))


if __name__ == "__main__":
    main(sys.argv[1:])
