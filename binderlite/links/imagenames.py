"""Image names exactly as BinderHub derives them from (build slug, resolved ref)."""

from __future__ import annotations

import hashlib
import string

import escapism

SAFE_CHARS = set(string.ascii_letters + string.digits)
MAX_NAME_LENGTH = 255


def safe_build_slug(build_slug: str, limit: int, hash_length: int = 6) -> str:
    """Escape a build slug to ``[a-z0-9-]`` and append a short hash for uniqueness."""
    slug_hash = hashlib.sha256(build_slug.encode("utf-8")).hexdigest()
    escaped = escapism.escape(build_slug, safe=SAFE_CHARS, escape_char="-")
    return f"{escaped[: limit - hash_length - 1]}-{slug_hash[:hash_length]}".lower()


def image_name(prefix: str, build_slug: str, resolved_ref: str) -> str:
    """``<prefix><safe slug>:<ref>``, lower-cased with ``_`` → ``-``, as BinderHub."""
    slug = safe_build_slug(build_slug, limit=MAX_NAME_LENGTH - len(prefix))
    return f"{prefix}{slug}:{resolved_ref}".replace("_", "-").lower()
