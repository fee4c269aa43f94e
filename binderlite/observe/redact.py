"""Credentials pasted into a link, removed from whatever binderlite writes down (access log, event log).

A link like ``/v2/git/https%3A%2F%2Fuser%3Atoken%40host%2F…`` is refused by
the app, but a log may record it before anyone looks at it: ``redact``
replaces a URL's user information, plain or URL-escaped, with ``[redacted]``.
"""

from __future__ import annotations

import re

# "://" (or %3A%2F%2F), then everything up to the last "@" (or %40) before the host's end.
USERINFO = re.compile(r"((?::|%3A)(?:/|%2F){2})(?:(?!%2F)[^/\s?#&])*(?:@|%40)", re.IGNORECASE)
REDACTED = r"\1[redacted]@"


def redact(text: str) -> str:
    """``text`` with every URL's user information replaced by ``[redacted]``."""
    return USERINFO.sub(REDACTED, text)
