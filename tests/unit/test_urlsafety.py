"""Which repository URLs may be fetched (literal IPs only: no DNS, never a connection)."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binderlite.errors import UnsafeURLError
from binderlite.links import urlsafety
from binderlite.links.urlsafety import check_repo_url, normalize_git_url

INTERNAL = [
    "http://127.0.0.1/repo.git",
    "http://127.1.2.3:8080/repo.git",
    "https://localhost/repo.git",
    "http://[::1]/repo.git",
    "http://[::ffff:127.0.0.1]/repo.git",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/repo.git",
    "http://172.16.0.1/repo.git",
    "http://172.31.255.254/repo.git",
    "http://192.168.1.10/repo.git",
    "http://0.0.0.0/repo.git",
    "git://100.64.0.1/repo.git",
    "ssh://git@[fc00::1]/repo.git",
    "http://[fe80::1]/repo.git",
    "http://224.0.0.1/repo.git",
    "git@127.0.0.1:org/repo.git",
]

LOCAL_PATHS = ["file:///etc/passwd", "FILE:///srv/repo", "/srv/repo.git", "./repo", "../../etc", "repo"]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_are_refused(url):
    with pytest.raises(UnsafeURLError) as err:
        check_repo_url(url)
    assert "allow_local_repos" in err.value.message
    assert err.value.status == 400


@pytest.mark.parametrize("url", LOCAL_PATHS)
def test_local_paths_are_refused(url):
    with pytest.raises(UnsafeURLError, match="allow_local_repos"):
        check_repo_url(url)


@pytest.mark.parametrize("url", INTERNAL + LOCAL_PATHS)
def test_allow_local_lets_local_urls_through(url):
    assert check_repo_url(url, allow_local=True) == normalize_git_url(url)


def test_localhost_resolves_to_loopback():
    # "localhost" resolves from /etc/hosts; no query leaves the machine.
    with pytest.raises(UnsafeURLError, match="internal address"):
        check_repo_url("http://localhost:5000/repo.git")


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "EXT::sh -c id",
        "fd::17",
        "-upload-pack=touch /tmp/pwned",
        "--config=core.sshCommand=id",
    ],
)
def test_git_transport_tricks_are_refused_even_when_local_is_allowed(url):
    with pytest.raises(UnsafeURLError):
        check_repo_url(url, allow_local=True)


@pytest.mark.parametrize("url", ["https://8.8.8.8/re\npo.git", "https://8.8.8.8/repo\x00.git", "https://8.8.8.8/\rx"])
def test_control_characters_are_refused(url):
    with pytest.raises(UnsafeURLError, match="control characters"):
        check_repo_url(url, allow_local=True)


@pytest.mark.parametrize(
    "url",
    ["ftp://8.8.8.8/repo.git", "javascript:alert(1)", "data:text/plain,x", "gopher://8.8.8.8/", "svn://8.8.8.8/r"],
)
def test_disallowed_schemes(url):
    with pytest.raises(UnsafeURLError, match="protocol"):
        check_repo_url(url, allow_local=True)


@pytest.mark.parametrize("url", ["https:///repo.git", "http://:80/x"])
def test_missing_host(url):
    with pytest.raises(UnsafeURLError, match="no host"):
        check_repo_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/org/repo.git",
        "http://1.1.1.1:8080/repo",
        "git://8.8.4.4/repo.git",
        "ssh://git@8.8.8.8/org/repo.git",
        "https://[2001:4860:4860::8888]/repo.git",
    ],
)
def test_public_addresses_pass(url):
    assert check_repo_url(url) == url


def test_hostnames_are_resolved_and_every_address_checked():
    with mock.patch.object(urlsafety, "_resolve", return_value=["8.8.8.8", "10.0.0.5"]):
        with pytest.raises(UnsafeURLError, match="10.0.0.5"):
            check_repo_url("https://rebind.example.org/repo.git")
    with mock.patch.object(urlsafety, "_resolve", return_value=["8.8.8.8"]):
        assert check_repo_url("https://git.example.org/repo.git") == "https://git.example.org/repo.git"
    with mock.patch.object(urlsafety, "_resolve", return_value=[]):
        with pytest.raises(UnsafeURLError, match="does not resolve"):
            check_repo_url("https://nowhere.invalid/repo.git")


@pytest.mark.parametrize(
    "url,expected",
    [
        ("git@github.com:org/repo.git", "ssh://git@github.com/org/repo.git"),
        ("deploy@git.example.org:group/sub/repo", "ssh://deploy@git.example.org/group/sub/repo"),
        ("https://github.com/org/repo", "https://github.com/org/repo"),
        ("ssh://git@github.com/org/repo", "ssh://git@github.com/org/repo"),
    ],
)
def test_scp_style_normalization(url, expected):
    assert normalize_git_url(url) == expected


def test_scp_style_url_is_checked_after_normalization():
    assert check_repo_url("git@8.8.8.8:org/repo.git") == "ssh://git@8.8.8.8/org/repo.git"


def test_surrounding_whitespace_is_stripped():
    assert check_repo_url("  https://8.8.8.8/repo.git \n") == "https://8.8.8.8/repo.git"


@pytest.mark.parametrize("url", ["http://[x/repo.git", "https://[::1/repo"])
def test_malformed_urls(url):
    with pytest.raises(UnsafeURLError, match="not a valid URL"):
        check_repo_url(url, allow_local=True)


@given(st.text(max_size=200), st.booleans())
def test_any_text_is_accepted_or_unsafe(url, allow_local):
    with mock.patch.object(urlsafety, "_resolve", return_value=["8.8.8.8"]):
        try:
            result = check_repo_url(url, allow_local)
        except UnsafeURLError:
            return
    assert isinstance(result, str)
    assert not result.lower().startswith(("ext::", "-"))
