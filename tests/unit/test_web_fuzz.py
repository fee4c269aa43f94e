"""Property-based fuzzing of the web routes: whatever the path, query or headers, no 5xx and no traceback.

Resolution, build and launch are the fakes of ``test_web.py`` (nothing external
is contacted), so every build stream runs to its end; link parsing, banned-spec
checks, the raw-path reading and the pages are the real code.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from binderlite.settings import Settings
from binderlite.web import status
from binderlite.web.app import create_app
from tests.unit.test_web import fake_pipeline  # noqa: F401 - the fixture, used by name below

pytestmark = pytest.mark.usefixtures("fake_pipeline")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    # The fakes are set once per test and are the same for every example.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRICKY = [
    "..", ".", "%2e%2e", "%2F", "%2f", "%5C", "\\", "//", "%", "%zz", "%00", "%0a", "?", "#", ";", ":", "@",
    "https:", "javascript:alert(1)", "git@h:x", "file:///etc/passwd", "%252F", "\u202e", "\ufeff", "é", "\U0001f600",
    "evil", "HEAD", "main", "x" * 3000,
]  # fmt: skip
HEADER_VALUE = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]), max_size=300)


def segment() -> st.SearchStrategy[str]:
    """One path segment: tricky tokens, arbitrary text (raw or percent-escaped), or both."""
    free = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
    return st.one_of(
        st.sampled_from(TRICKY),
        free,
        free.map(lambda s: quote(s, safe="")),
        st.lists(st.sampled_from(TRICKY) | free, max_size=3).map("".join),
    )


def links() -> st.SearchStrategy[str]:
    """Links of every provider that resolve (with the fakes), with a fuzzed part here and there."""
    return st.one_of(
        st.builds("gh/{}/{}/{}".format, st.sampled_from(["org", "evil"]) | segment(), st.just("repo"), segment()),
        st.builds("gl/group%2F{}/{}".format, st.sampled_from(["repo", "sub%2Frepo"]) | segment(), segment()),
        st.builds("git/{}/{}".format, segment().map(lambda s: quote(f"https://h.example/{s}.git", safe="")), segment()),
        st.builds("gist/user/{}/{}".format, st.sampled_from(["0123abcd", "x"]) | segment(), segment()),
        st.builds("zenodo/{}".format, st.sampled_from(["10.5281/zenodo.3242074", "10.5281%2Fzenodo.1"]) | segment()),
    )


def paths(prefixes: tuple[str, ...] = ("v2", "build", "repo")) -> st.SearchStrategy[str]:
    providers = st.sampled_from(["gh", "gl", "git", "gist", "zenodo", "figshare", "dataverse", "ckan", "nosuch", ""])
    fuzzed = st.builds(
        lambda provider, rest: f"{provider}/{'/'.join(rest)}", providers | segment(), st.lists(segment(), max_size=6)
    )
    return st.builds("/{}/{}{}".format, st.sampled_from(prefixes), links() | fuzzed, st.sampled_from(["", "/"]))


def queries() -> st.SearchStrategy[str]:
    keys = st.sampled_from(["urlpath", "labpath", "filepath", "build_only", "ref"]) | segment()
    pairs = st.lists(st.tuples(keys, segment() | st.sampled_from(["true", "TRUE", ""])), max_size=4)
    return st.one_of(
        pairs.map(lambda ps: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in ps)),
        pairs.map(lambda ps: "&".join(f"{k}={v}" for k, v in ps)),
    )


@pytest.fixture
def app(tmp_path, monkeypatch):
    for check in ("check_docker", "check_hub", "check_registry"):
        monkeypatch.setattr(status, check, lambda settings: True)
    app = create_app(Settings(state_dir=str(tmp_path), banned_specs="^evil/.*"))
    app.config.update(STREAM_KEEPALIVE=0.05, STREAM_LINGER=0)
    return app


def check(response) -> None:
    """The properties every response has, whatever was asked."""
    body = response.get_data(as_text=True)  # reads a build stream to its end
    assert response.status_code < 500, body[:2000]
    assert "Traceback" not in body
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    event(f"{response.status_code} {response.mimetype}")
    if response.mimetype == "text/event-stream" and response.request.method != "HEAD":
        chunks = [c for c in body.split("\n\n") if c and c != ":keepalive"]
        assert all(c.startswith("data: ") for c in chunks), body[:2000]
        final = json.loads(chunks[-1][len("data: ") :])
        assert final["phase"] in ("ready", "failed"), final
        event(f"stream ends {final['phase']}")


@FUZZ
@given(path=paths(), query=queries(), accept=st.sampled_from(["text/event-stream", "text/html", "*/*", ""]))
def test_routes_never_fail_whatever_the_path_and_query(app, path, query, accept):
    with app.test_client() as client:
        check(client.get(f"{path}?{query}", headers={"Accept": accept}))


@FUZZ
@given(path=paths(("build",)), query=queries())
def test_build_streams_always_end_in_ready_or_failed(app, path, query):
    with app.test_client() as client:
        response = client.get(f"{path}?{query}", headers={"Accept": "text/event-stream"})
        check(response)
        # A stream, unless the path names no spec (404) or has "//", merged by a redirect first (308).
        assert response.mimetype == "text/event-stream" or response.status_code in (308, 404)


@FUZZ
@given(
    path=paths(),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
    headers=st.dictionaries(
        st.sampled_from(["Accept", "Accept-Language", "Accept-Encoding", "Cookie", "Referer", "User-Agent", "Origin"]),
        HEADER_VALUE | st.sampled_from(["text/event-stream", "application/json;q=0.9, text/html;q=abc", "*/*;q=-1"]),
    ),
)
def test_routes_never_fail_whatever_the_method_and_headers(app, path, method, headers):
    with app.test_client() as client:
        check(client.open(path, method=method, headers=headers))


@FUZZ
@given(raw=st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=400), prefix=paths())
def test_build_and_launch_read_whatever_raw_uri_the_server_passes(app, raw, prefix):
    """gunicorn hands the request target over as is (RAW_URI); the spec is read from it."""
    with app.test_client() as client:
        for target in (prefix + raw, raw):
            for accept in ("text/event-stream", "text/html"):
                response = client.get(
                    prefix, headers={"Accept": accept}, environ_overrides={"RAW_URI": target, "REQUEST_URI": target}
                )
                check(response)
