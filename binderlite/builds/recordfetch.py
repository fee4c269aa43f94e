"""Fetch a data record into ``./repo`` with repo2docker's content provider: runs *inside* the sandbox.

``python recordfetch.py <provider> <record> <ref>``. It is copied into the
sandbox's work directory and run from there, so it imports nothing of
binderlite: only repo2docker (from the installed environment) and the
standard library. It prints one JSON event per line. Whatever the record
names — resource URLs, file names, absolute or with ``..`` — it writes as the
sandbox user, in a mount namespace where only the work directory is
writable, and its connections to internal addresses are refused by the kernel.
A name that leaves ``./repo`` is refused here too, with a clear message.

A private record's token comes in the environment (``BINDERLITE_RECORD_ORIGIN``,
``_HEADER``, ``_VALUE``; see ``binderlite.links.recordcredentials``), is taken
out of it at once, and is added as a header only to requests to that exact
scheme://host:port; redirects are followed here one by one, so one to another
host gets no token.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.parse

from repo2docker import contentproviders

PROVIDERS = {
    "zenodo": contentproviders.Zenodo,
    "figshare": contentproviders.Figshare,
    "dataverse": contentproviders.Dataverse,
    "hydroshare": contentproviders.Hydroshare,
    "ckan": contentproviders.CKAN,
}
OUTPUT = "repo"
TOKEN_VARIABLES = ("BINDERLITE_RECORD_ORIGIN", "BINDERLITE_RECORD_HEADER", "BINDERLITE_RECORD_VALUE")
MAX_REDIRECTS = 10


def emit(message: str, phase: str = "fetching") -> None:
    sys.stdout.write(json.dumps({"phase": phase, "message": message}) + "\n")
    sys.stdout.flush()


class EventHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102 - logging's hook
        emit(record.getMessage().rstrip("\n") + "\n")


def confined_open(root: str):
    """``open`` that refuses to write outside ``root`` (the content providers join record names to paths)."""
    real_open = open

    def guarded(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+") and isinstance(file, (str, bytes, os.PathLike)):
            target = os.path.realpath(os.fsdecode(file))
            if target != root and not target.startswith(root + os.sep):
                raise PermissionError(f"the record names a file outside the repository: {os.fsdecode(file)!r}")
        return real_open(file, mode, *args, **kwargs)

    return guarded


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-case (the port only when the URL names one)."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{host}:{parts.port}" if parts.port else f"{parts.scheme.lower()}://{host}"


def authorizing(get, origin: str, name: str, value: str):
    """``get`` that adds the header ``name: value`` to requests to ``origin`` only, redirects followed here."""

    def request(url, **kwargs):
        follow = kwargs.pop("allow_redirects", True)
        headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items() if k.lower() != name.lower()}
        for _ in range(MAX_REDIRECTS + 1):
            extra = {name: value} if origin_of(url) == origin else {}
            resp = get(url, headers={**headers, **extra}, allow_redirects=False, **kwargs)
            if not (follow and resp.is_redirect and resp.headers.get("location")):
                return resp
            url = urllib.parse.urljoin(url, resp.headers["location"])
        raise OSError("too many redirects")

    return request


def take_token() -> tuple[str, str, str] | None:
    """The private record's origin, header name and value, removed from the environment; None if absent."""
    values = tuple(os.environ.pop(name, "") for name in TOKEN_VARIABLES)
    return values if all(values) else None


def main(argv: list[str]) -> int:
    provider_name, record, ref = argv
    os.makedirs(OUTPUT, exist_ok=True)
    root = os.path.realpath(OUTPUT)
    log = logging.getLogger("repo2docker")
    log.handlers = [EventHandler()]
    log.setLevel(logging.INFO)
    log.propagate = False
    token = take_token()
    provider = PROVIDERS[provider_name]()
    if token is not None:
        provider._request = provider.urlopen = authorizing(provider.session.get, *token)
    try:
        spec = provider.detect(record, ref=ref or None)
        if spec is None:
            emit(f"{record} is not a {provider_name} record.\n", "failed")
            return 2
        for name in {type(provider).__module__, "repo2docker.contentproviders.doi"}:
            if name in sys.modules:
                sys.modules[name].open = confined_open(root)
        for line in provider.fetch(spec, root, yield_output=True):
            emit(line)
    except PermissionError as exc:
        emit(f"Refused: {exc}\n", "failed")
        return 3
    except Exception as exc:  # every failure is one line for the build worker, which words it for users
        emit(f"{exc.__class__.__name__}: {exc}\n", "failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
