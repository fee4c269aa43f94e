"""gunicorn's access log without credentials pasted into links.

gunicorn logs every request line before the app looks at it: this logger
passes the request line, path, query and referrer through ``observe.redact``.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from binderlite.observe.redact import redact

__all__ = ["RedactingLogger", "redact"]


class RedactingLogger(Logger):
    """gunicorn's Logger; the request line, path, query and referrer are redacted."""

    def atoms(self, resp, req, environ, request_time):  # noqa: ANN001 - gunicorn's signature
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f", "{referer}i"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
