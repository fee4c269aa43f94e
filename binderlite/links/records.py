"""Providers for data archives: a DOI or dataset link → a record version.

zenodo, figshare, dataverse, hydroshare and ckan links follow BinderHub's
spec formats, build slugs and resolved refs. binderlite only resolves the
record's current version here (a few small JSON requests); the content
itself is fetched in the sandbox by repo2docker's content provider of the
same name (``binderlite.builds.fetch``), which receives ``ResolvedRepo.repo_url``
as BinderHub passes it.

DOIs are looked up with doi.org's handle API (as repo2docker does), so no
redirect chain is followed to hosts nobody checked; every connection — to a
dataset URL the user gave, the host a DOI points to, or a redirect — is
checked as it is made (``sandbox.guardedhttp``).

Records behind a token (``[[records]]`` in the secrets file,
``recordcredentials``): resolution asks anonymously first; only when the
record's host refuses it (401, 403, 404) and the secrets file has a token for
that host is it asked again with the token, and the link is then private
(keyed image name, refused in anonymous mode; the download uses the token too).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import escapism
import requests

from binderlite.credentials import RecordCredential
from binderlite.errors import FetchError, RefNotFoundError, SpecError
from binderlite.links.model import RepoProvider, ResolvedRepo
from binderlite.links.recordcredentials import credential_for as record_credential_for
from binderlite.links.recordcredentials import headers_for
from binderlite.links.urlsafety import check_repo_url
from binderlite.sandbox.guardedhttp import guarded_session
from binderlite.settings import Settings

HTTP_TIMEOUT = 20
DOI_RESOLVER = "https://doi.org/"
HYDROSHARE_URL = "https://www.hydroshare.org"
MAX_SPEC_LENGTH = 1024
MAX_REDIRECTS = 5
DOI_PATTERN = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/[!-~]+)\Z", re.IGNORECASE)
HYDROSHARE_ID = re.compile(r"[0-9a-f]{32}")
FIGSHARE_URL = re.compile(r"(.*)/articles/([^/]+)/([^/]+)/(\d+)(/)?(\d+)?")
RECORD_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}\Z")  # also a valid image tag
USER_AGENT = "binderlite"
REFUSED = (401, 403, 404)  # what a host answers for a record it does not show to everyone


class RecordRefused(RefNotFoundError):
    """The host answered 401, 403 or 404 for ``url`` (a token for that host may open it)."""

    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


def _check_text(spec: str, what: str) -> None:
    if not spec or len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(f"{what} must be 1 to {MAX_SPEC_LENGTH} characters long.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in spec):
        raise SpecError(f"{what} contains control characters.")


def parse_doi(spec: str, provider: str) -> str:
    """The bare DOI (``10.prefix/suffix``) in ``spec``, or SpecError."""
    _check_text(spec, f"The {provider} DOI")
    match = DOI_PATTERN.match(spec)
    if not match or any(part in (".", "..") for part in match.group(1).split("/")):
        raise SpecError(f"{spec!r} is not a valid {provider} (10.<prefix>/<suffix>, e.g. 10.5281/zenodo.3242074).")
    return match.group(1)


def parse_http_url(text: str, what: str) -> str:
    """An http(s) URL with a host, or SpecError (safety is checked before fetching)."""
    _check_text(text, what)
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a malformed port)
    except ValueError:
        raise SpecError(f"{what} {text!r} is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in text:
        raise SpecError(f"{what} must be an http(s) URL, not {text!r}.")
    return text


def _verify(settings: Settings) -> str | bool:
    return settings.ca_bundle if settings.ca_bundle and os.path.isfile(settings.ca_bundle) else True


def _network_reason(exc: requests.RequestException) -> str:
    """What went wrong, in words that say nothing about what lies behind an internal address."""
    if "internal address" in str(exc):
        return "it resolves to an internal address"
    if isinstance(exc, requests.Timeout):
        return "it did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return "its TLS certificate was not accepted"
    return "it could not be reached"


def http_get(
    url: str,
    settings: Settings,
    *,
    trusted: bool = False,
    provider: str = "",
    credential: RecordCredential | None = None,
) -> requests.Response:
    """GET ``url``, following redirects one by one, every connection checked where it is made.

    ``check_repo_url`` gives early, friendly refusals; the enforcement is the
    session's (``guarded_session``: no connection to an internal address,
    whatever DNS or a redirect says), unless ``allow_local_repos`` is on or the
    URL is ``trusted`` (binderlite's own DOI resolver; a redirect from it is
    not). A network failure is a FetchError, an HTTP error status a RefNotFoundError
    (RecordRefused for 401, 403, 404). ``credential``'s token goes in ``provider``'s
    header to its own host only, decided afresh for every URL a redirect leads to.
    """
    direct, guarded = requests.Session(), guarded_session()
    for _ in range(MAX_REDIRECTS + 1):
        if not trusted:
            url = check_repo_url(url, settings.allow_local_repos)
        session = direct if trusted or settings.allow_local_repos else guarded
        try:
            resp = session.get(
                url,
                timeout=HTTP_TIMEOUT,
                verify=_verify(settings),
                allow_redirects=False,
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept": "application/json",
                    **headers_for(settings, provider, url, credential),
                },
            )
        except requests.RequestException as exc:
            host = urllib.parse.urlsplit(url).hostname or url
            raise FetchError(f"Could not reach {host}: {_network_reason(exc)}.") from None
        if resp.is_redirect and resp.headers.get("location"):
            url = urllib.parse.urljoin(url, resp.headers["location"])
            trusted = False
            continue
        if resp.status_code >= 400:
            message = f"{url} answered HTTP {resp.status_code} {resp.reason or ''}".strip() + "."
            raise RecordRefused(message, url) if resp.status_code in REFUSED else RefNotFoundError(message)
        return resp
    raise RefNotFoundError(f"Too many redirects fetching {url}.")


def get_json(
    url: str,
    settings: Settings,
    *,
    trusted: bool = False,
    provider: str = "",
    credential: RecordCredential | None = None,
) -> Any:
    """The JSON body of ``url`` (see http_get)."""
    resp = http_get(url, settings, trusted=trusted, provider=provider, credential=credential)
    try:
        return resp.json()
    except ValueError:
        raise RefNotFoundError(f"{url} did not answer with JSON.") from None


def doi_to_url(doi: str, settings: Settings) -> str:
    """The URL a DOI is registered to, from doi.org's handle API."""
    quoted = urllib.parse.quote(doi, safe="/")
    data = get_json(f"{DOI_RESOLVER}api/handles/{quoted}", settings, trusted=True)
    for value in data.get("values", []) if isinstance(data, dict) else []:
        if isinstance(value, dict) and value.get("type") == "URL":
            target = (value.get("data") or {}).get("value")
            if isinstance(target, str) and target:
                return target
    raise RefNotFoundError(f"DOI {doi} does not point to any URL.")


def _field(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]…`` or RefNotFoundError naming the missing field."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            raise RefNotFoundError(f"The record has no {'.'.join(path)} field.")
        data = data[key]
    return data


def _epoch(date: str) -> str:
    """Whole seconds since the epoch of a UTC ISO timestamp, as repo2docker's content ids."""
    try:
        parsed = datetime.strptime(date.split(".")[0], "%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError):
        raise RefNotFoundError(f"The record's modification date {date!r} is not understood.") from None
    return str(int(parsed.replace(tzinfo=UTC).timestamp()))


class RecordProvider(RepoProvider):
    """Shared shape of an archive provider; by default ``spec`` is a DOI that repo2docker gets as is."""

    def __init__(self, spec: str, settings: Settings):
        super().__init__(spec, settings)
        self.credential: RecordCredential | None = None  # set for the second, authenticated attempt
        self.record_url = ""  # the record's URL on its host (what a private record's download is given)
        self.parse(spec)

    def parse(self, spec: str) -> None:
        """Check the spec and keep its parts (raise SpecError)."""
        self.doi = parse_doi(spec, self.display_name)

    def repo_url(self) -> str:
        return self.spec

    def resolve(self) -> ResolvedRepo:
        self.credential = None
        try:
            return self.resolve_record()
        except RecordRefused as exc:
            self.credential = record_credential_for(self.settings, self.name, exc.url)
            if self.credential is None:
                raise RefNotFoundError(f"Could not resolve {self.display_name} {self.spec}: {exc.message}") from None
        except RefNotFoundError as exc:
            raise RefNotFoundError(f"Could not resolve {self.display_name} {self.spec}: {exc.message}") from None
        try:
            resolved = self.resolve_record()
        except RefNotFoundError:
            raise RefNotFoundError(
                f"Could not resolve {self.display_name} {self.spec}: it does not exist, or the token for "
                f"{self.credential.host} in the secrets file does not give access to it."
            ) from None
        resolved.private = True
        resolved.repo_url = self.record_url or resolved.repo_url
        return resolved

    def get_json(self, url: str) -> Any:
        """``get_json`` with this attempt's token (none on the first, anonymous attempt)."""
        return get_json(url, self.settings, provider=self.name, credential=self.credential)

    def resolve_record(self) -> ResolvedRepo:
        raise NotImplementedError

    def _resolved(self, record_id: str, resolved_spec: str, ref_url: str, slug: str) -> ResolvedRepo:
        if not RECORD_ID.match(record_id):
            raise RefNotFoundError(f"it resolved to an unusable record id {record_id!r}.")
        return ResolvedRepo(
            provider=self.name,
            spec=self.spec,
            repo_url=self.repo_url(),
            unresolved_ref="",
            resolved_ref=record_id,
            resolved_spec=resolved_spec,
            ref_url=ref_url,
            build_slug=slug,
            content_provider=self.content_provider,
        )


class ZenodoProvider(RecordProvider):
    """``zenodo/<DOI>``: the DOI's latest record id is the version."""

    name = "zenodo"
    content_provider = "zenodo"
    display_name = "Zenodo DOI"

    def resolve_record(self) -> ResolvedRepo:
        url = doi_to_url(self.doi, self.settings)
        parts = urllib.parse.urlsplit(url)
        record_id = parts.path.rsplit("/", 1)[-1]
        if self.credential or record_credential_for(self.settings, self.name, url):
            # the host has a token: is the record public? (the REST API answers 404 otherwise)
            self.record_url = url
            self.get_json(parts._replace(path=f"/api/records/{record_id}", query="", fragment="").geturl())
        head = self.spec.split("zenodo")[0]
        resolved_spec = f"{head}zenodo.{record_id}" if "zenodo" in self.spec else self.spec
        return self._resolved(record_id, resolved_spec, f"{DOI_RESOLVER}{resolved_spec}", f"zenodo-{record_id}")


class FigshareProvider(RecordProvider):
    """``figshare/<DOI>``: article id and version (1 when the DOI has none)."""

    name = "figshare"
    content_provider = "figshare"
    display_name = "Figshare DOI"

    def resolve_record(self) -> ResolvedRepo:
        url = doi_to_url(self.doi, self.settings)
        match = FIGSHARE_URL.match(url)
        if not match:
            raise RefNotFoundError(f"DOI {self.doi} points to {url}, which is not a Figshare article.")
        record_id = f"{match.group(4)}.v{match.group(6) or '1'}"
        head = self.spec.split("figshare")[0]
        resolved_spec = f"{head}figshare.{record_id}" if "figshare" in self.spec else self.spec
        return self._resolved(record_id, resolved_spec, f"{DOI_RESOLVER}{resolved_spec}", f"figshare-{record_id}")


class DataverseProvider(RecordProvider):
    """``dataverse/<DOI or dataset URL>``: dataset id and latest major.minor version."""

    name = "dataverse"
    content_provider = "dataverse"
    display_name = "Dataverse DOI"

    def parse(self, spec: str) -> None:
        text = urllib.parse.unquote(spec) if spec.lower().startswith(("http%3a", "https%3a")) else spec
        if text.lower().startswith(("http://", "https://")) and not DOI_PATTERN.match(text):
            self.doi, self.url = "", parse_http_url(text, "A Dataverse dataset URL")
        else:
            self.doi, self.url = parse_doi(text, self.display_name), ""

    def resolve_record(self) -> ResolvedRepo:
        if self.url:
            url = check_repo_url(self.url, self.settings.allow_local_repos)
        else:
            url = doi_to_url(self.doi, self.settings)
        self.record_url = url
        api_url = urllib.parse.urlsplit(url)._replace(path="/api/datasets/:persistentId", fragment="").geturl()
        resp = self.get_json(api_url)
        if not isinstance(resp, dict) or resp.get("status") != "OK":
            raise RefNotFoundError(f"Dataverse at {api_url} has no dataset for {self.spec}.")
        identifier = str(_field(resp, "data", "identifier"))
        record_id = "{}.v{}.{}".format(
            _field(resp, "data", "id"),
            _field(resp, "data", "latestVersion", "versionNumber"),
            _field(resp, "data", "latestVersion", "versionMinorNumber"),
        )
        resolved_spec = f"{_field(resp, 'data', 'authority')}/{identifier}"
        slug = "dataverse-" + escapism.escape(identifier, escape_char="-").lower()
        return self._resolved(record_id, resolved_spec, str(_field(resp, "data", "persistentUrl")), slug)


class HydroshareProvider(RecordProvider):
    """``hydroshare/<resource id or URL>``: the resource's last modification time."""

    name = "hydroshare"
    content_provider = "hydroshare"
    display_name = "Hydroshare resource"

    def parse(self, spec: str) -> None:
        text = urllib.parse.unquote(spec)
        _check_text(text, "The Hydroshare resource")
        self.url = parse_http_url(text, "A Hydroshare URL") if "://" in text else ""
        ids = HYDROSHARE_ID.findall(text)
        if not ids:
            raise SpecError(f"{spec!r} contains no Hydroshare resource id (32 hexadecimal digits).")
        self.resource_id = ids[-1]

    def repo_url(self) -> str:
        return f"{HYDROSHARE_URL}/resource/{self.resource_id}"

    def resolve_record(self) -> ResolvedRepo:
        if self.url:
            check_repo_url(self.url, self.settings.allow_local_repos)
        meta = get_json(f"{HYDROSHARE_URL}/hsapi/resource/{self.resource_id}/scimeta/elements", self.settings)
        dates = _field(meta, "dates")
        modified = next((d for d in dates if isinstance(d, dict) and d.get("type") == "modified"), None)
        if modified is None:
            raise RefNotFoundError(f"Hydroshare resource {self.resource_id} has no modification date.")
        record_id = f"{self.resource_id}.v{_epoch(str(_field(modified, 'start_date')))}"
        url = self.repo_url()
        return self._resolved(record_id, url, url, f"hydroshare-{record_id}")


class CKANProvider(RecordProvider):
    """``ckan/<url-escaped dataset URL>``: the dataset's (or activity's) modification time."""

    name = "ckan"
    content_provider = "ckan"
    display_name = "CKAN dataset"

    def parse(self, spec: str) -> None:
        self.url = parse_http_url(urllib.parse.unquote(spec), "A CKAN dataset URL")
        parts = urllib.parse.urlsplit(self.url)
        prefix, sep, rest = parts.path.partition("/dataset/")
        segments = rest.split("/")
        self.dataset_id = segments[0]
        if not sep or not RECORD_ID.match(self.dataset_id):
            raise SpecError(f"{self.url!r} is not a CKAN dataset URL (…/dataset/<name>).")
        self.api_url = parts._replace(path=f"{prefix}/api/3/action/", query="", fragment="").geturl()
        self.activity_id = ""
        if "history" in segments and segments.index("history") + 1 < len(segments):
            self.activity_id = segments[segments.index("history") + 1]
        elif urllib.parse.parse_qs(parts.query).get("activity_id"):
            self.activity_id = urllib.parse.parse_qs(parts.query)["activity_id"][0]

    def repo_url(self) -> str:
        return self.url

    def resolve_record(self) -> ResolvedRepo:
        check_repo_url(self.url, self.settings.allow_local_repos)
        if self.activity_id:
            query = urllib.parse.urlencode({"id": self.activity_id, "include_data": "true"})
            resp = self.get_json(f"{self.api_url}activity_show?{query}")
            modified = _field(resp, "result", "data", "package", "metadata_modified")
        else:
            query = urllib.parse.urlencode({"id": self.dataset_id})
            resp = self.get_json(f"{self.api_url}package_show?{query}")
            modified = _field(resp, "result", "metadata_modified")
        record_id = f"{self.dataset_id}.v{_epoch(str(modified))}"
        return self._resolved(record_id, self.spec, self.url, f"ckan-{self.dataset_id}")
