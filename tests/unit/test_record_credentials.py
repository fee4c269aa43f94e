"""API tokens for data-record hosts: the secrets file, resolution against a local record API, the download's header."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest

from binderlite.builds import recordfetch
from binderlite.builds.fetch import Fetcher
from binderlite.builds.pipeline import image_for
from binderlite.credentials import RecordCredential, load_credentials
from binderlite.errors import ConfigError, FetchError, RefNotFoundError
from binderlite.links import recordcredentials, records
from binderlite.links.records import CKANProvider, DataverseProvider, ZenodoProvider
from binderlite.settings import Settings
from tests.helpers.ckansite import PrivateCKAN

TOKEN = "rec-UNIQUE-9f8e7d6c5b4a"
DATASET = {
    "status": "OK",
    "data": {
        "id": 42,
        "identifier": "FK2/SECRET",
        "authority": "10.5072",
        "persistentUrl": "https://doi.org/10.5072/FK2/SECRET",
        "latestVersion": {"versionNumber": 1, "versionMinorNumber": 0},
    },
}
PACKAGE = {"success": True, "result": {"metadata_modified": "2024-01-02T03:04:05.000000"}}


class RecordAPI:
    """A Dataverse-, CKAN- and Zenodo-shaped API on 127.0.0.1 that shows its records only with the token."""

    def __init__(self):
        self.headers: list[dict[str, str]] = []
        self.public: set[str] = set()
        self.redirects: dict[str, str] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                api.headers.append(dict(self.headers))
                path = urllib.parse.urlsplit(self.path).path
                if path in api.redirects and TOKEN in str(self.headers):  # as storage behind a signed-in API
                    self.send_response(302)
                    self.send_header("Location", api.redirects[path])
                    self.end_headers()
                    return
                allowed = (
                    path in api.public
                    or {
                        "X-Dataverse-key": TOKEN,
                        "Authorization": f"Bearer {TOKEN}",
                    }.items()
                    & self.headers.items()
                    or self.headers.get("Authorization") == TOKEN
                )
                body = {"/api/datasets/:persistentId": DATASET, "/api/3/action/package_show": PACKAGE}.get(
                    path, {"id": 7}
                )
                data = json.dumps(body if allowed else {"status": "ERROR", "message": "not found"}).encode()
                self.send_response(200 if allowed else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def sent_token(self) -> list[bool]:
        return [any(TOKEN in value for value in h.values()) for h in self.headers]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api():
    server = RecordAPI()
    yield server
    server.close()


def secrets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "credentials.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def settings_with(tmp_path: Path, text: str, allow_local: bool = True) -> Settings:
    return Settings(
        state_dir=str(tmp_path / "state"),
        allow_local_repos=allow_local,
        credentials_file=str(secrets(tmp_path, text)),
    )


@pytest.fixture
def cfg(tmp_path, api) -> Settings:
    return settings_with(tmp_path, f'[[records]]\nhost = "{api.host}"\ntoken = "{TOKEN}"\n')


def dataverse(api: RecordAPI, settings: Settings) -> DataverseProvider:
    return DataverseProvider(f"{api.url}/dataset.xhtml?persistentId=doi:10.5072/FK2/SECRET", settings)


# ---- the secrets file ---------------------------------------------------------------------


def test_records_entries_are_read_and_the_token_is_never_shown(tmp_path):
    settings = settings_with(tmp_path, f'[[records]]\nhost = "Zenodo.org"\ntoken = "{TOKEN}"\n')
    credentials = load_credentials(settings)
    assert credentials.record_for("zenodo.org").token == TOKEN
    assert credentials.record_for("sandbox.zenodo.org") is None
    assert TOKEN not in repr(credentials) and TOKEN not in repr(credentials.records[0])


@pytest.mark.parametrize(
    "entry,expected",
    [
        ('host = "zenodo.org"', "[[records]] entry 1 (zenodo.org) has no token."),
        (f'token = "{TOKEN}"', 'needs host = "name" or "name:port"'),
        (f'host = "https://zenodo.org"\ntoken = "{TOKEN}"', 'needs host = "name" or "name:port"'),
        (f'host = "zenodo.org"\ntoken = "{TOKEN}"\nusername = "me"', "has unknown keys ['username']"),
        ('host = "zenodo.org"\ntoken = "two words"', "the token contains spaces or control characters."),
        ('host = "zenodo.org"\ntoken = 5', "every value must be a string."),
    ],
)
def test_a_bad_records_entry_is_one_clear_error_without_the_token(tmp_path, entry, expected):
    with pytest.raises(ConfigError) as err:
        load_credentials(settings_with(tmp_path, f"[[records]]\n{entry}\n"))
    assert expected in err.value.message
    assert TOKEN not in err.value.message and "two words" not in err.value.message


def test_two_tokens_for_one_host_are_refused(tmp_path):
    entry = f'[[records]]\nhost = "zenodo.org"\ntoken = "{TOKEN}"\n'
    with pytest.raises(ConfigError, match="more than one \\[\\[records\\]\\] entry for zenodo.org"):
        load_credentials(settings_with(tmp_path, entry + entry))


def test_records_written_as_a_table_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"must be a list of tables, written \[\[records\]\]"):
        load_credentials(settings_with(tmp_path, f'[records]\nhost = "zenodo.org"\ntoken = "{TOKEN}"\n'))


# ---- where a token may go -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,allow_local,sent",
    [
        ("https://data.example/api/x", False, True),
        ("http://data.example/api/x", True, False),  # plain http to a real host: never
        ("https://data.example:8443/api/x", False, False),  # another port is another host
        ("https://evil.example/api/x", False, False),
        ("https://data.example.evil.example/api/x", False, False),
    ],
)
def test_a_token_goes_to_its_own_host_over_https_only(tmp_path, url, allow_local, sent):
    settings = settings_with(tmp_path, f'[[records]]\nhost = "data.example"\ntoken = "{TOKEN}"\n', allow_local)
    credential = load_credentials(settings).records[0]
    headers = recordcredentials.headers_for(settings, "dataverse", url, credential)
    assert headers == ({"X-Dataverse-key": TOKEN} if sent else {})


def test_plain_http_to_loopback_only_with_allow_local_repos(tmp_path):
    text = f'[[records]]\nhost = "127.0.0.1:8080"\ntoken = "{TOKEN}"\n'
    url = "http://127.0.0.1:8080/api/3/action/package_show"
    assert recordcredentials.credential_for(settings_with(tmp_path, text, True), "ckan", url) is not None
    assert recordcredentials.credential_for(settings_with(tmp_path, text, False), "ckan", url) is None


def test_each_provider_sends_its_apis_header():
    credential = RecordCredential(host="h", token=TOKEN)
    assert recordcredentials.header("zenodo", credential) == {"Authorization": f"Bearer {TOKEN}"}
    assert recordcredentials.header("figshare", credential) == {"Authorization": f"token {TOKEN}"}
    assert recordcredentials.header("dataverse", credential) == {"X-Dataverse-key": TOKEN}
    assert recordcredentials.header("ckan", credential) == {"Authorization": TOKEN}
    assert "hydroshare" not in recordcredentials.HEADERS


# ---- resolution: anonymous first, the token only when refused ---------------------------------


def test_without_a_token_a_private_dataset_is_not_found(tmp_path, api):
    settings = settings_with(tmp_path, "")
    with pytest.raises(RefNotFoundError) as err:
        dataverse(api, settings).resolve()
    assert "answered HTTP 404" in err.value.message
    assert api.sent_token() == [False]


def test_a_private_dataset_resolves_with_the_token_and_is_private(cfg, api):
    resolved = dataverse(api, cfg).resolve()
    assert resolved.private
    assert resolved.resolved_ref == "42.v1.0"
    assert api.sent_token() == [False, True], "asked anonymously first, then with the token"
    assert api.headers[1]["X-Dataverse-key"] == TOKEN
    image = image_for(cfg, resolved)
    assert "private-" in image and "secret" not in image.lower()
    assert TOKEN not in json.dumps(resolved.__dict__)


def test_a_public_dataset_never_sees_the_token(cfg, api):
    api.public.add("/api/datasets/:persistentId")
    resolved = dataverse(api, cfg).resolve()
    assert not resolved.private
    assert api.sent_token() == [False]


def test_a_wrong_token_is_named_as_the_cause(tmp_path, api):
    settings = settings_with(tmp_path, f'[[records]]\nhost = "{api.host}"\ntoken = "not-the-token"\n')
    with pytest.raises(RefNotFoundError) as err:
        dataverse(api, settings).resolve()
    assert f"the token for {api.host} in the secrets file does not give access to it." in err.value.message
    assert "not-the-token" not in err.value.message


def test_a_token_for_another_host_is_not_sent(tmp_path, api):
    settings = settings_with(tmp_path, f'[[records]]\nhost = "127.0.0.1:1"\ntoken = "{TOKEN}"\n')
    with pytest.raises(RefNotFoundError):
        dataverse(api, settings).resolve()
    assert api.sent_token() == [False]


def test_a_redirect_to_another_host_gets_no_token(cfg, api):
    other = RecordAPI()
    try:
        api.redirects["/api/3/action/package_show"] = f"{other.url}/api/3/action/package_show"
        with pytest.raises(RefNotFoundError):
            CKANProvider(urllib.parse.quote(f"{api.url}/dataset/thesis", safe=""), cfg).resolve()
        assert api.sent_token() == [False, True]
        assert other.sent_token() == [False], "the redirected request went without the token"
    finally:
        other.close()


def test_a_private_ckan_dataset_sends_the_bare_token(cfg, api):
    resolved = CKANProvider(urllib.parse.quote(f"{api.url}/dataset/thesis", safe=""), cfg).resolve()
    assert resolved.private and resolved.resolved_ref == "thesis.v1704164645"
    assert api.headers[-1]["Authorization"] == TOKEN
    assert resolved.repo_url == f"{api.url}/dataset/thesis"


def test_zenodo_checks_the_record_api_only_when_its_host_has_a_token(cfg, api, monkeypatch):
    target = f"{api.url}/records/123"
    monkeypatch.setattr(records, "doi_to_url", lambda doi, settings: target)
    resolved = ZenodoProvider("10.5281/zenodo.123", cfg).resolve()
    assert resolved.private and resolved.repo_url == target
    assert api.headers[-1]["Authorization"] == f"Bearer {TOKEN}"
    api.headers.clear()
    anonymous = with_secrets(cfg, "")
    assert not ZenodoProvider("10.5281/zenodo.123", anonymous).resolve().private
    assert api.headers == [], "no token for the host: the DOI alone resolves, as before"


def with_secrets(settings: Settings, text: str) -> Settings:
    path = Path(settings.credentials_file).with_name("empty.toml")
    path.write_text(text)
    path.chmod(0o600)
    return dataclasses.replace(settings, credentials_file=str(path))


# ---- the download in the sandbox ------------------------------------------------------------


def test_the_download_environment_holds_the_header_for_private_records_only(cfg, api):
    env = recordcredentials.environment(cfg, "ckan", f"{api.url}/dataset/thesis")
    assert env == {
        "BINDERLITE_RECORD_ORIGIN": api.url,
        "BINDERLITE_RECORD_HEADER": "Authorization",
        "BINDERLITE_RECORD_VALUE": TOKEN,
    }
    assert recordcredentials.environment(cfg, "hydroshare", f"{api.url}/resource/x") == {}


def test_the_download_adds_the_header_to_its_origin_only_and_not_after_a_redirect():
    calls = []

    def get(url, headers=None, allow_redirects=True, **kwargs):
        calls.append((url, dict(headers)))
        redirect = url.endswith("/file")
        return mock.Mock(is_redirect=redirect, headers={"location": "https://cdn.example/blob"} if redirect else {})

    request = recordfetch.authorizing(get, "https://data.example", "X-Dataverse-key", TOKEN)
    request("https://data.example/api/file", headers={"accept": "application/json"}, stream=True)
    assert calls == [
        ("https://data.example/api/file", {"accept": "application/json", "X-Dataverse-key": TOKEN}),
        ("https://cdn.example/blob", {"accept": "application/json"}),
    ]
    calls.clear()
    request("http://data.example/api/x")  # the same host over plain http: no token
    assert calls == [("http://data.example/api/x", {})]


def test_the_download_takes_the_token_out_of_its_environment(monkeypatch):
    monkeypatch.setenv("BINDERLITE_RECORD_ORIGIN", "https://data.example")
    monkeypatch.setenv("BINDERLITE_RECORD_HEADER", "Authorization")
    monkeypatch.setenv("BINDERLITE_RECORD_VALUE", TOKEN)
    assert recordfetch.take_token() == ("https://data.example", "Authorization", TOKEN)
    assert not any(TOKEN in value for value in os.environ.values())


def test_the_download_script_fetches_a_private_record_with_the_header_from_its_environment(tmp_path):
    """recordfetch with repo2docker's CKAN provider, outside the sandbox: with the header it gets the file."""
    site = PrivateCKAN(TOKEN, b"six==1.16.0\n")
    record = f"http://127.0.0.1:{site.port}/dataset/thesis"
    script = tmp_path / "recordfetch.py"
    shutil.copyfile(recordfetch.__file__, script)
    token_env = {
        "BINDERLITE_RECORD_ORIGIN": f"http://127.0.0.1:{site.port}",
        "BINDERLITE_RECORD_HEADER": "Authorization",
        "BINDERLITE_RECORD_VALUE": TOKEN,
    }
    try:
        runs = {}
        for name, extra in (("anonymous", {}), ("private", token_env)):
            work = tmp_path / name
            work.mkdir()
            env = {"PATH": os.environ["PATH"], "NO_PROXY": "*", **extra}
            argv = [sys.executable, "-I", str(script), "ckan", record, ""]
            runs[name] = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    finally:
        site.close()
    assert runs["anonymous"].returncode != 0
    assert runs["private"].returncode == 0, runs["private"].stdout
    assert (tmp_path / "private/repo/requirements.txt").read_text() == "six==1.16.0\n"
    assert ("/files/requirements.txt", True) in site.token_sent
    assert not any(TOKEN in run.stdout + run.stderr for run in runs.values())


@pytest.mark.parametrize("private", [False, True])
def test_the_fetch_passes_the_token_for_private_records_only(cfg, api, tmp_path, private):
    fetcher = Fetcher(cfg, tmp_path / "work", allow_local=True, log=print, detail=print, timeout=60)
    (tmp_path / "work").mkdir()
    fetcher.private = private
    with mock.patch.object(Fetcher, "run", return_value=mock.Mock(returncode=0, stdout="")) as run:
        fetcher.record("ckan", f"{api.url}/dataset/thesis", "")
    env = run.call_args.args[1]
    assert (env.get("BINDERLITE_RECORD_VALUE") == TOKEN) is private
    assert not any(TOKEN in part for part in run.call_args.args[0])


def test_a_private_record_whose_token_is_gone_fails_clearly(tmp_path, api):
    settings = settings_with(tmp_path, "")
    fetcher = Fetcher(settings, tmp_path / "work", allow_local=True, log=print, detail=print, timeout=60)
    (tmp_path / "work").mkdir()
    fetcher.private = True
    with pytest.raises(FetchError, match="no token for its host any more"):
        fetcher.record("ckan", f"{api.url}/dataset/thesis", "")
