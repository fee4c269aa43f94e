"""DOI providers, resolved against a tiny JSON server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
import requests

from binderlite.errors import FetchError, RefNotFoundError, SpecError, UnsafeURLError
from binderlite.links import records as doiproviders
from binderlite.links.records import (
    HTTP_TIMEOUT,
    CKANProvider,
    DataverseProvider,
    FigshareProvider,
    HydroshareProvider,
    ZenodoProvider,
)
from binderlite.links.registry import get_provider
from binderlite.settings import Settings


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, object, dict[str, str]]] = {}
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.seen.append(self.path)
        status, body, headers = self.routes.get(self.path, (404, {"error": "not found"}, {}))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A JSON server on 127.0.0.1; ``server.route(path, body)`` adds answers."""
    handler = type("Handler", (_Handler,), {"routes": {}, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(doiproviders, "DOI_RESOLVER", base + "/")
    monkeypatch.setattr(doiproviders, "HYDROSHARE_URL", base)

    class Server:
        url = base
        seen = handler.seen

        @staticmethod
        def route(path, body, status=200, headers=None):
            handler.routes[path] = (status, body, headers or {})

        @staticmethod
        def doi(doi, target):
            handler.routes[f"/api/handles/{doi}"] = (
                200,
                {
                    "responseCode": 1,
                    "values": [{"type": "HS_ADMIN", "data": {}}, {"type": "URL", "data": {"value": target}}],
                },
                {},
            )

    yield Server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cfg(tmp_path) -> Settings:
    return Settings(state_dir=str(tmp_path), allow_local_repos=True, ca_bundle="")


# ---- parsing -----------------------------------------------------------


@pytest.mark.parametrize(
    "cls,spec",
    [
        (ZenodoProvider, "10.5281/zenodo.3242074"),
        (ZenodoProvider, "doi:10.5281/zenodo.3242074"),
        (ZenodoProvider, "https://doi.org/10.5281/zenodo.3242074"),
        (FigshareProvider, "10.6084/m9.figshare.9782777.v1"),
        (DataverseProvider, "10.7910/DVN/TJCLKP"),
        (
            DataverseProvider,
            "https%3A%2F%2Fdataverse.harvard.edu%2Fdataset.xhtml%3FpersistentId%3Ddoi%3A10.7910%2FDVN%2FTJCLKP",
        ),
        (HydroshareProvider, "b8f6eae9d89241cf8b5904033460af61"),
        (HydroshareProvider, "https%3A%2F%2Fwww.hydroshare.org%2Fresource%2Fb8f6eae9d89241cf8b5904033460af61"),
        (CKANProvider, "https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fsample-dataset-1"),
    ],
)
def test_valid_specs_parse(cfg, cls, spec):
    provider = cls(spec, cfg)
    assert provider.spec == spec


@pytest.mark.parametrize(
    "provider,spec",
    [
        ("zenodo", "zenodo.3242074"),
        ("zenodo", "10.5281/zenodo 1"),
        ("zenodo", "10.5281/../../etc"),
        ("zenodo", "10.5281/zen\nodo.1"),
        ("zenodo", "10.5281/zenodo.1\x00"),
        ("zenodo", "10.5281/" + "x" * 5000),
        ("figshare", "ext::sh -c x"),
        ("dataverse", "file:///etc/passwd"),
        ("dataverse", "ftp%3A%2F%2Fexample.org%2Fx"),
        ("dataverse", "not a doi"),
        ("hydroshare", "no-id-here"),
        ("hydroshare", "ftp%3A%2F%2Fexample.org%2Fb8f6eae9d89241cf8b5904033460af61"),
        ("ckan", "https%3A%2F%2Fdemo.ckan.org%2Fgroup%2Fx"),
        ("ckan", "https%3A%2F%2Fdemo.ckan.org%2Fdataset%2F"),
        ("ckan", "file%3A%2F%2F%2Fdataset%2Fx"),
        ("ckan", "https%3A%2F%2Fdemo.ckan.org%2Fdataset%2F..%2Fx"),
        ("ckan", "https%3A%2F%2Fdemo.ckan.org%2Fdataset%2Fa%0Ab"),
        ("ckan", "http://[x/dataset/a"),
        ("ckan", "http://a:99999999/dataset/x"),
        ("hydroshare", "http://[x/b8f6eae9d89241cf8b5904033460af61"),
        ("dataverse", "https://[::1/x"),
    ],
)
def test_malformed_specs_are_spec_errors(cfg, provider, spec):
    with pytest.raises(SpecError):
        get_provider(provider, spec, cfg)


def test_ckan_activity_from_history_path_and_query(cfg):
    by_path = CKANProvider(urllib.parse.quote("https://ckan.example.org/data/dataset/ds1/history/act9", safe=""), cfg)
    assert (by_path.dataset_id, by_path.activity_id) == ("ds1", "act9")
    assert by_path.api_url == "https://ckan.example.org/data/api/3/action/"
    by_query = CKANProvider(urllib.parse.quote("https://ckan.example.org/dataset/ds1?activity_id=a2", safe=""), cfg)
    assert by_query.activity_id == "a2"


# ---- resolution ----------------------------------------------------------


def test_zenodo(server, cfg):
    server.doi("10.5281/zenodo.3242074", "https://zenodo.org/record/3242075")
    resolved = ZenodoProvider("10.5281/zenodo.3242074", cfg).resolve()
    assert resolved.resolved_ref == "3242075"
    assert resolved.build_slug == "zenodo-3242075"
    assert resolved.resolved_spec == "10.5281/zenodo.3242075"
    assert resolved.repo_url == "10.5281/zenodo.3242074"
    assert resolved.content_provider == "zenodo"
    assert resolved.binder_persistent_request == "v2/zenodo/10.5281/zenodo.3242075"
    assert resolved.ref_url.endswith("/10.5281/zenodo.3242075")


@pytest.mark.parametrize(
    "target,record",
    [
        ("https://figshare.com/articles/code/Binder-ready/9782777/3", "9782777.v3"),
        ("https://figshare.com/articles/code/Binder-ready/9782777", "9782777.v1"),
    ],
)
def test_figshare(server, cfg, target, record):
    server.doi("10.6084/m9.figshare.9782777", target)
    resolved = FigshareProvider("10.6084/m9.figshare.9782777", cfg).resolve()
    assert resolved.resolved_ref == record
    assert resolved.build_slug == f"figshare-{record}"
    assert resolved.resolved_spec == f"10.6084/m9.figshare.{record}"
    assert resolved.content_provider == "figshare"


def test_figshare_doi_pointing_elsewhere(server, cfg):
    server.doi("10.6084/m9.figshare.1", "https://example.org/not-an-article")
    with pytest.raises(RefNotFoundError, match="not a Figshare article"):
        FigshareProvider("10.6084/m9.figshare.1", cfg).resolve()


DATAVERSE_ANSWER = {
    "status": "OK",
    "data": {
        "id": 3035124,
        "identifier": "DVN/TJCLKP",
        "authority": "10.7910",
        "persistentUrl": "https://doi.org/10.7910/DVN/TJCLKP",
        "latestVersion": {"versionNumber": 3, "versionMinorNumber": 0},
    },
}


def test_dataverse_doi(server, cfg):
    server.doi("10.7910/DVN/TJCLKP", f"{server.url}/citation?persistentId=doi:10.7910/DVN/TJCLKP")
    server.route("/api/datasets/:persistentId?persistentId=doi:10.7910/DVN/TJCLKP", DATAVERSE_ANSWER)
    resolved = DataverseProvider("doi:10.7910/DVN/TJCLKP", cfg).resolve()
    assert resolved.resolved_ref == "3035124.v3.0"
    assert resolved.build_slug == "dataverse-dvn-2ftjclkp"
    assert resolved.resolved_spec == "10.7910/DVN/TJCLKP"
    assert resolved.ref_url == "https://doi.org/10.7910/DVN/TJCLKP"
    assert resolved.repo_url == "doi:10.7910/DVN/TJCLKP"
    assert resolved.content_provider == "dataverse"


def test_dataverse_url_follows_checked_redirect(server, cfg):
    server.route("/api/datasets/:persistentId?persistentId=x", b"", 302, {"Location": "/moved?persistentId=x"})
    server.route("/moved?persistentId=x", DATAVERSE_ANSWER)
    spec = urllib.parse.quote(f"{server.url}/dataset.xhtml?persistentId=x", safe="")
    assert DataverseProvider(spec, cfg).resolve().resolved_ref == "3035124.v3.0"


def test_dataverse_not_ok(server, cfg):
    server.doi("10.7910/DVN/X", f"{server.url}/citation?persistentId=doi:10.7910/DVN/X")
    server.route("/api/datasets/:persistentId?persistentId=doi:10.7910/DVN/X", {"status": "ERROR"})
    with pytest.raises(RefNotFoundError, match="no dataset"):
        DataverseProvider("10.7910/DVN/X", cfg).resolve()


def test_dataverse_missing_field(server, cfg):
    broken = {"status": "OK", "data": {"id": 1, "identifier": "DVN/X", "authority": "10.7910"}}
    server.doi("10.7910/DVN/X", f"{server.url}/citation?persistentId=doi:10.7910/DVN/X")
    server.route("/api/datasets/:persistentId?persistentId=doi:10.7910/DVN/X", broken)
    with pytest.raises(RefNotFoundError, match="latestVersion"):
        DataverseProvider("10.7910/DVN/X", cfg).resolve()


def test_hydroshare(server, cfg):
    rid = "b8f6eae9d89241cf8b5904033460af61"
    server.route(
        f"/hsapi/resource/{rid}/scimeta/elements",
        {
            "dates": [
                {"type": "created", "start_date": "2019-01-01T00:00:00"},
                {"type": "modified", "start_date": "2019-09-24T17:35:21.123456Z"},
            ]
        },
    )
    resolved = HydroshareProvider(f"https%3A%2F%2Fwww.hydroshare.org%2Fresource%2F{rid}", cfg).resolve()
    assert resolved.resolved_ref == f"{rid}.v1569346521"
    assert resolved.build_slug == f"hydroshare-{rid}.v1569346521"
    assert resolved.repo_url == f"{server.url}/resource/{rid}"
    assert resolved.resolved_spec == resolved.repo_url
    assert resolved.content_provider == "hydroshare"


@pytest.mark.parametrize("activity", [False, True])
def test_ckan(server, cfg, activity):
    base = f"{server.url}/portal/dataset/sample-1"
    if activity:
        base += "?activity_id=act1"
        server.route(
            "/portal/api/3/action/activity_show?id=act1&include_data=true",
            {"result": {"data": {"package": {"metadata_modified": "2023-01-02T03:04:05.678901"}}}},
        )
    else:
        server.route(
            "/portal/api/3/action/package_show?id=sample-1",
            {"success": True, "result": {"metadata_modified": "2023-01-02T03:04:05.678901"}},
        )
    spec = urllib.parse.quote(base, safe="")
    resolved = get_provider("ckan", spec, cfg).resolve()
    assert resolved.resolved_ref == "sample-1.v1672628645"
    assert resolved.build_slug == "ckan-sample-1"
    assert resolved.repo_url == base
    assert resolved.content_provider == "ckan"


# ---- failures ------------------------------------------------------------


def test_unknown_doi_is_ref_not_found(server, cfg):
    with pytest.raises(RefNotFoundError) as err:
        ZenodoProvider("10.5281/zenodo.1", cfg).resolve()
    assert err.value.message.startswith("Could not resolve Zenodo DOI 10.5281/zenodo.1:")
    assert "404" in err.value.message
    assert "\n" not in err.value.message


@pytest.mark.parametrize("target", ["https://zenodo.org/records/", "https://zenodo.org/records/ü", "https://x/-1"])
def test_unusable_record_id(server, cfg, target):
    server.doi("10.5281/zenodo.9", target)
    with pytest.raises(RefNotFoundError, match="unusable record id"):
        ZenodoProvider("10.5281/zenodo.9", cfg).resolve()


def test_doi_without_url(server, cfg):
    server.route("/api/handles/10.5281/zenodo.2", {"values": []})
    with pytest.raises(RefNotFoundError, match="does not point to any URL"):
        ZenodoProvider("10.5281/zenodo.2", cfg).resolve()


def test_non_json_answer(server, cfg):
    server.route("/api/handles/10.5281/zenodo.3", b"<html>", 200, {"Content-Type": "text/html"})
    with pytest.raises(RefNotFoundError, match="JSON"):
        ZenodoProvider("10.5281/zenodo.3", cfg).resolve()


def test_redirect_loop(server, cfg):
    server.route(
        "/api/datasets/:persistentId?persistentId=x",
        b"",
        302,
        {"Location": "/api/datasets/:persistentId?persistentId=x"},
    )
    with pytest.raises(RefNotFoundError, match="Too many redirects"):
        DataverseProvider(urllib.parse.quote(f"{server.url}/d?persistentId=x", safe=""), cfg).resolve()


@pytest.mark.parametrize(
    "exc, reason",
    [
        (requests.ConnectionError("HTTPConnectionPool(host='10.1.2.3', port=22): no route\nto host"), "be reached"),
        (requests.Timeout("slow"), "did not answer in time"),
    ],
)
def test_network_errors_are_network_errors_and_say_nothing_more(cfg, exc, reason):
    with mock.patch.object(requests.Session, "get", side_effect=exc):
        with pytest.raises(FetchError) as err:
            ZenodoProvider("10.5281/zenodo.1", cfg).resolve()
    assert "\n" not in err.value.message and reason in err.value.message
    assert "10.1.2.3" not in err.value.message and "port" not in err.value.message


def test_requests_use_timeout_and_ca_bundle(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    cfg = Settings(state_dir=str(tmp_path), ca_bundle=str(bundle))
    answer = mock.Mock(is_redirect=False, status_code=200, headers={})
    answer.json.return_value = {"values": [{"type": "URL", "data": {"value": "https://zenodo.org/records/7"}}]}
    with mock.patch.object(requests.Session, "get", return_value=answer) as get:
        assert ZenodoProvider("10.5281/zenodo.7", cfg).resolve().resolved_ref == "7"
    assert get.call_args.kwargs["timeout"] == HTTP_TIMEOUT
    assert get.call_args.kwargs["verify"] == str(bundle)
    assert get.call_args.args[0] == "https://doi.org/api/handles/10.5281/zenodo.7"


def test_doi_pointing_inside_the_network_is_refused(server, tmp_path):
    strict = Settings(state_dir=str(tmp_path), ca_bundle="")
    server.doi("10.7910/DVN/EVIL", "http://169.254.169.254/latest?persistentId=x")
    with pytest.raises(UnsafeURLError, match="169.254.169.254"):
        DataverseProvider("10.7910/DVN/EVIL", strict).resolve()


def test_redirect_inside_the_network_is_refused(server, tmp_path, monkeypatch):
    strict = Settings(state_dir=str(tmp_path), ca_bundle="")
    server.route("/api/handles/10.7910/DVN/R", b"", 302, {"Location": "http://10.0.0.1/x"})
    with pytest.raises(UnsafeURLError, match="10.0.0.1"):
        DataverseProvider("10.7910/DVN/R", strict).resolve()


@pytest.mark.parametrize(
    "provider,url",
    [
        ("ckan", "http://127.0.0.1:9/dataset/x"),
        ("dataverse", "http://[::1]:9/dataset.xhtml?persistentId=x"),
        ("hydroshare", "http://192.168.1.1/resource/b8f6eae9d89241cf8b5904033460af61"),
    ],
)
def test_user_urls_are_checked_before_any_request(tmp_path, provider, url):
    strict = Settings(state_dir=str(tmp_path))
    with mock.patch.object(requests.Session, "get") as get:
        with pytest.raises(UnsafeURLError):
            get_provider(provider, urllib.parse.quote(url, safe=""), strict).resolve()
    get.assert_not_called()


def test_a_name_that_resolves_inside_is_refused_when_connecting(tmp_path, monkeypatch):
    """DNS rebinding, a second answer: the guard checks the addresses it connects to, not the name."""
    import socket

    strict = Settings(state_dir=str(tmp_path), ca_bundle="")
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":  # public to the early string check (no port), internal when connecting
            address = "93.184.216.34" if port is None else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(FetchError, match="internal address"):
        get_provider("ckan", urllib.parse.quote("https://rebind.example/dataset/x", safe=""), strict).resolve()
