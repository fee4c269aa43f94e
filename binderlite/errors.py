"""binderlite's one exception tree: every error carries a user-facing message, an HTTP status and an exit code.

```
BinderliteError                 500  exit 1  something failed
├── BuildFailedError            500  exit 1  a build ended failed (the message is its reason)
├── LaunchFailedError           500  exit 1  a launch ended failed
├── BadInputError               400  exit 2  the link or the repository is at fault
│   ├── SpecError               400          malformed link, unknown provider
│   │   └── BannedSpecError     403          the repository matches banned_specs
│   ├── UnsafeURLError          400          a URL that points inside this machine or network
│   ├── UnsafeRepositoryError   400          content that leaves its folder or exceeds a limit
│   └── RefNotFoundError        404          the repository or the ref does not exist
├── ConfigError                 500  exit 3  a setting is wrong; the message says how to fix it
└── UnavailableError            503  exit 4  something binderlite needs does not answer
    ├── FetchError              502          the repository's host could not be reached or read
    ├── DockerUnavailableError  503
    ├── BaseImageMissingError   503
    ├── HubError                5xx          a JupyterHub call failed (``retryable``; the hub's status)
    ├── ServiceError            503          a service did not start or stop (with the end of its log)
    └── SchedulerLocked         409          another scheduler process holds the lock
```

The web app answers ``status``; the CLI prints ``Error: <message>`` and
exits with ``exit_code``. Exit code 2 is also click's code for a usage error.
A ``failed`` event carries the status of the error behind it, and
``error_for_status`` turns it back into the kind of error (for the CLI).
"""

from __future__ import annotations


class BinderliteError(Exception):
    """Base class: ``message`` is shown to users, ``status`` is the HTTP status, ``exit_code`` the CLI's."""

    status = 500
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BuildFailedError(BinderliteError):
    pass


class LaunchFailedError(BinderliteError):
    pass


class BadInputError(BinderliteError):
    status = 400
    exit_code = 2


class SpecError(BadInputError):
    pass


class BannedSpecError(SpecError):
    status = 403


class UnsafeURLError(BadInputError):
    pass


class UnsafeRepositoryError(BadInputError):
    pass


class RefNotFoundError(BadInputError):
    status = 404


class ConfigError(BinderliteError):
    exit_code = 3


class UnavailableError(BinderliteError):
    status = 503
    exit_code = 4


class FetchError(UnavailableError):
    status = 502


class DockerUnavailableError(UnavailableError):
    pass


class BaseImageMissingError(UnavailableError):
    pass


class HubError(UnavailableError):
    """A JupyterHub call failed; ``retryable`` is False when trying again cannot help."""

    def __init__(self, message: str, retryable: bool = True, status: int = 500):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class ServiceError(UnavailableError):
    """A service did not start or stop; the message carries the end of its log."""


class SchedulerLocked(UnavailableError):
    """Another scheduler process holds the lock."""

    status = 409


def error_for_status(status: int | None, fallback: type[BinderliteError]) -> type[BinderliteError]:
    """The kind of error a ``failed`` event's ``status_code`` stands for (``fallback`` when it has none)."""
    if status is None:
        return fallback
    if 400 <= status < 500 and status not in (409, 429):
        return BadInputError
    if status in (409, 429) or status >= 502:
        return UnavailableError
    return fallback
