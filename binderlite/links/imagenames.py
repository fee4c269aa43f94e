"""Image names exactly as BinderHub derives them from (build slug, resolved ref); keyed for private repositories.

A public repository's image is named as BinderHub names it, from the
repository URL and commit. A private repository's name must not be guessable
from public data (the registry's catalogue and the Docker daemon list names):
it is an HMAC of the build slug (and of the commit, for the tag) under a key
kept in ``<state_dir>/hub/image_name_key``, made once, readable by root only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path

import escapism

SAFE_CHARS = set(string.ascii_letters + string.digits)
MAX_NAME_LENGTH = 255
PRIVATE_MARK = "private-"
KEY_FILE = "image_name_key"


def safe_build_slug(build_slug: str, limit: int, hash_length: int = 6) -> str:
    """Escape a build slug to ``[a-z0-9-]`` and append a short hash for uniqueness."""
    slug_hash = hashlib.sha256(build_slug.encode("utf-8")).hexdigest()
    escaped = escapism.escape(build_slug, safe=SAFE_CHARS, escape_char="-")
    return f"{escaped[: limit - hash_length - 1]}-{slug_hash[:hash_length]}".lower()


def image_name(prefix: str, build_slug: str, resolved_ref: str) -> str:
    """``<prefix><safe slug>:<ref>``, lower-cased with ``_`` → ``-``, as BinderHub."""
    slug = safe_build_slug(build_slug, limit=MAX_NAME_LENGTH - len(prefix))
    return f"{prefix}{slug}:{resolved_ref}".replace("_", "-").lower()


def private_image_name(prefix: str, key: bytes, build_slug: str, resolved_ref: str) -> str:
    """``<prefix>private-<keyed hash of the repo>:<keyed hash of repo and commit>``."""
    if len(key) < 16:
        raise ValueError("a private image name needs the image name key")
    repo = hmac.new(key, b"repo\0" + build_slug.encode(), hashlib.sha256).hexdigest()[:32]
    tag = hmac.new(key, b"ref\0" + build_slug.encode() + b"\0" + resolved_ref.encode(), hashlib.sha256)
    return f"{prefix}{PRIVATE_MARK}{repo}:{tag.hexdigest()[:40]}"


def image_name_key(hub_dir: Path) -> bytes:
    """The key of private image names: ``hub_dir/image_name_key``, made once (mode 0600)."""
    path = Path(hub_dir) / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    try:
        os.link(draft, path)  # atomic: whoever links first made the key, complete
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return bytes.fromhex(path.read_text().strip())
