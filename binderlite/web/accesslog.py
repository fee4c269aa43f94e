"""gunicorn's access log without credentials pasted into links.

A link like ``/v2/git/https%3A%2F%2Fuser%3Atoken%40host%2F…`` is refused by
the app, but gunicorn logs every request line before anyone looks at it: this
logger replaces a URL's user information (plain or URL-escaped, in the path,
the query or the referrer) with ``[redacted]``.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

# "://" (or %3A%2F%2F), then everything up to the last "@" (or %40) before the host's end.
USERINFO = re.compile(r"((?::|%3A)(?:/|%2F){2})(?:(?!%2F)[^/\s?#&])*(?:@|%40)", re.IGNORECASE)
REDACTED = r"\1[redacted]@"


def redact(text: str) -> str:
    """``text`` with every URL's user information replaced by ``[redacted]``."""
    return USERINFO.sub(REDACTED, text)


class RedactingLogger(Logger):
    """gunicorn's Logger; the request line, path, query and referrer are redacted."""

    def atoms(self, resp, req, environ, request_time):  # noqa: ANN001 - gunicorn's signature
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
