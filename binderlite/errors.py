"""binderlite's exception tree; every error carries a user-facing message and an HTTP status.

BinderliteError (500)
├── ConfigError (500)         a setting is wrong; the message says how to fix it
├── SpecError (400)           malformed link, unknown provider
│   └── BannedSpecError (403) the spec matches banned_specs
├── UnsafeURLError (400)      a repository URL that points inside this machine/network
├── UnsafeRepositoryError (400) fetched content that leaves its folder or exceeds a limit
├── RefNotFoundError (404)    the ref does not resolve
├── FetchError (502)          the repository or record could not be fetched
├── HubError (500, or the hub's own status) a JupyterHub call failed; ``retryable`` says if trying again helps
├── SchedulerLocked (409)     another scheduler process holds the lock
├── ServiceError (503)        a service did not start or stop; the message carries the end of its log
├── DockerUnavailableError (503)
├── BaseImageMissingError (503)
└── BuildFailedError (500)
"""

from __future__ import annotations


class BinderliteError(Exception):
    """Base class: ``message`` is shown to users, ``status`` is the HTTP status."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(BinderliteError):
    status = 500


class SpecError(BinderliteError):
    status = 400


class BannedSpecError(SpecError):
    status = 403


class UnsafeURLError(BinderliteError):
    status = 400


class UnsafeRepositoryError(BinderliteError):
    status = 400


class RefNotFoundError(BinderliteError):
    status = 404


class FetchError(BinderliteError):
    status = 502


class DockerUnavailableError(BinderliteError):
    status = 503


class BaseImageMissingError(BinderliteError):
    status = 503


class BuildFailedError(BinderliteError):
    status = 500


class HubError(BinderliteError):
    """A JupyterHub call failed; ``retryable`` is False when trying again cannot help."""

    def __init__(self, message: str, retryable: bool = True, status: int = 500):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class SchedulerLocked(BinderliteError):
    """Another scheduler process holds the lock."""

    status = 409


class ServiceError(BinderliteError):
    """A service did not start or stop; the message carries the end of its log."""

    status = 503
