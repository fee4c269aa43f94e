"""The workshop's links file: one Binder link per line, optionally its expected attendees.

A line is a link as a handout has it — ``gh/org/repo/ref``, ``v2/gh/…``, a
full ``https://<any binder>/v2/gh/…`` URL, ``git/<escaped URL>/<ref>``,
``zenodo/10.5281/…`` or ``doi/10.…`` — and, after a space, the number of
attendees expected for it. a word starting with ``#`` starts a comment; blank lines are skipped.
Every line is checked before anything is prepared, without contacting any
host: a bad line is reported with its number, all bad lines at once.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from binderlite.errors import BadInputError, BinderliteError
from binderlite.links.git import is_local_path
from binderlite.links.registry import get_provider
from binderlite.links.urlsafety import check_repo_url
from binderlite.settings import Settings

# doi/<DOI> is not a BinderHub provider: it names the record's archive by the DOI's prefix.
DOI_PROVIDERS = {"zenodo": "zenodo", "figshare": "figshare"}


@dataclass(frozen=True)
class LinkLine:
    """One line of the links file: the link as written, its provider and spec, its attendees (0: not given)."""

    number: int
    link: str
    provider: str
    spec: str
    attendees: int = 0


def split_link(link: str) -> tuple[str, str]:
    """(provider, spec) of a link path or a full Binder URL; the query and fragment are dropped."""
    text = link.strip()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or "/v2/" not in parts.path + "/":
            raise BadInputError(f"{text!r} is not a Binder link (https://<host>/v2/<provider>/<spec>).")
        text = parts.path.split("/v2/", 1)[1]
    else:
        text = text.split("?", 1)[0].split("#", 1)[0]
    text = text.lstrip("/").removeprefix("v2/")
    provider, sep, spec = text.partition("/")
    if not sep or not spec.strip("/"):
        raise BadInputError(f"{link!r} is not of the form <provider>/<spec>, e.g. gh/org/repo/main.")
    if provider == "doi":
        lowered = spec.lower()
        provider = next((name for key, name in DOI_PROVIDERS.items() if key in lowered), "")
        if not provider:
            raise BadInputError(
                f"doi/{spec}: only Zenodo and Figshare DOIs can be guessed; write the archive's link "
                "(zenodo/…, figshare/…, dataverse/…, hydroshare/…, ckan/…)."
            )
    return provider, spec.rstrip("/")


def check_link(provider: str, spec: str, settings: Settings) -> None:
    """Raise BadInputError if the link is malformed, of an unknown provider, or names a local repository."""
    parsed = get_provider(provider, spec, settings)
    if parsed.content_provider != "git":
        return
    url = parsed.repo_url()
    check_repo_url(url, allow_local=True)  # the form of the URL only: no host is looked up here
    if is_local_path(url) and not settings.allow_local_repos:
        raise BadInputError(f"{url!r} is a local path or file:// URL; a workshop prepares network repositories.")


def parse_line(number: int, line: str, settings: Settings) -> LinkLine | None:
    """The link on ``line`` (None for a blank or comment line); raise BadInputError naming the problem."""
    fields = line.split()
    for index, field in enumerate(fields):
        if field.startswith("#"):  # a comment, to the end of the line
            fields = fields[:index]
            break
    if not fields:
        return None
    if len(fields) > 2:
        raise BadInputError("expected a link and at most a number of attendees.")
    attendees = 0
    if len(fields) == 2:
        if not fields[1].isdigit() or int(fields[1]) < 1:
            raise BadInputError(f"{fields[1]!r} is not a number of attendees (a whole number, 1 or more).")
        attendees = int(fields[1])
    provider, spec = split_link(fields[0])
    check_link(provider, spec, settings)
    return LinkLine(number, fields[0], provider, spec, attendees)


def parse_links(text: str, settings: Settings, where: str = "the links file") -> list[LinkLine]:
    """Every link of ``text``; BadInputError listing each bad line (by number) if any is bad."""
    found: list[LinkLine] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            parsed = parse_line(number, line, settings)
        except BinderliteError as exc:
            problems.append(f"  line {number}: {exc.message.strip()}")
            continue
        if parsed is not None:
            found.append(parsed)
    if problems:
        raise BadInputError(f"{where} has bad lines; nothing was prepared:\n" + "\n".join(problems))
    if not found:
        raise BadInputError(f"{where} has no links (one Binder link per line, e.g. gh/org/repo/main).")
    return found


def read_links_file(path: Path, settings: Settings) -> list[LinkLine]:
    """The links of the file at ``path`` (see ``parse_links``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"Cannot read the links file {path}: {exc}.") from None
    return parse_links(text, settings, where=str(path))
