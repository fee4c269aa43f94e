"""Spec parsing, the provider registry, banned specs and git ref resolution."""

from __future__ import annotations

import subprocess
import urllib.parse
from unittest import mock

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from binderlite.errors import BannedSpecError, RefNotFoundError, SpecError, UnsafeURLError
from binderlite.links import git as providers
from binderlite.links.git import GistProvider, GitHubProvider, GitLabProvider, GitProvider
from binderlite.links.registry import PROVIDERS, get_provider, parse_link
from binderlite.settings import Settings

SHA = "a" * 40


@pytest.fixture
def cfg(tmp_path) -> Settings:
    return Settings(state_dir=str(tmp_path), allow_local_repos=True)


@pytest.fixture
def strict(tmp_path) -> Settings:
    return Settings(state_dir=str(tmp_path))


# ---- registry --------------------------------------------------------


def test_registry_has_every_binderhub_provider():
    assert list(PROVIDERS) == ["gh", "gl", "git", "gist", "zenodo", "figshare", "dataverse", "hydroshare", "ckan"]


def test_unknown_provider_says_what_is_supported(strict):
    with pytest.raises(SpecError) as err:
        get_provider("bitbucket", "a/b/c", strict)
    assert "Unknown provider 'bitbucket'" in err.value.message
    assert "gh, gl, git, gist, zenodo" in err.value.message
    assert err.value.status == 400


@pytest.mark.parametrize("spec", ["", "/", "///"])
def test_empty_spec_is_rejected(strict, spec):
    with pytest.raises(SpecError):
        get_provider("gh", spec, strict)


def test_trailing_slash_is_dropped(strict):
    provider = get_provider("gh", "org/repo/main/", strict)
    assert provider.spec == "org/repo/main"
    assert provider.unresolved_ref == "main"


@pytest.mark.parametrize(
    "link",
    ["gh/org/repo/ref", "v2/gh/org/repo/ref", "/v2/gh/org/repo/ref", "/gh/org/repo/ref"],
)
def test_parse_link_prefixes(strict, link):
    provider = parse_link(link, strict)
    assert isinstance(provider, GitHubProvider)
    assert (provider.user, provider.repo, provider.unresolved_ref) == ("org", "repo", "ref")


def test_parse_link_git_keeps_escaped_url(strict):
    provider = parse_link("git/https%3A%2F%2Fexample.org%2Fa.git/main", strict)
    assert isinstance(provider, GitProvider)
    assert provider.repo_url() == "https://example.org/a.git"
    assert provider.unresolved_ref == "main"


@pytest.mark.parametrize("link", ["", "gh", "/v2/", "v2/gh"])
def test_parse_link_without_spec(strict, link):
    with pytest.raises(SpecError):
        parse_link(link, strict)


# ---- banned specs ----------------------------------------------------


def test_banned_spec_matches_case_insensitively(strict):
    cfg = strict.with_overrides(banned_specs="^evil/.*, ^DS-100/textbook")
    with pytest.raises(BannedSpecError) as err:
        get_provider("gh", "ds-100/textbook/main", cfg)
    assert err.value.message.startswith("Sorry, ds-100/textbook/main is not allowed to launch.")
    assert err.value.status == 403
    with pytest.raises(BannedSpecError):
        parse_link("/v2/gh/evil/repo/HEAD", cfg)
    assert get_provider("gh", "good/repo/main", cfg).user == "good"


def test_banned_spec_uses_match_not_search(strict):
    cfg = strict.with_overrides(banned_specs="textbook")
    assert get_provider("gh", "ds-100/textbook/main", cfg).repo == "textbook"


def test_invalid_banned_regex_is_a_config_error(strict):
    from binderlite.errors import ConfigError

    with pytest.raises(ConfigError, match="banned_specs"):
        get_provider("gh", "a/b/c", strict.with_overrides(banned_specs="(unclosed"))


# ---- spec parsing ----------------------------------------------------


def test_gh_spec(strict):
    p = GitHubProvider("binder-examples/requirements.git/feature/x", strict)
    assert (p.user, p.repo, p.unresolved_ref) == ("binder-examples", "requirements", "feature/x")
    assert p.repo_url() == "https://github.com/binder-examples/requirements"


def test_gh_spec_without_ref_suggests_head(strict):
    with pytest.raises(SpecError, match='Did you mean "org/repo/HEAD"'):
        GitHubProvider("org/repo", strict)


def test_gl_spec(strict):
    p = GitLabProvider("group%2Fsub%2Fproject/v1.0", strict)
    assert p.namespace == "group/sub/project"
    assert p.repo_url() == "https://gitlab.com/group/sub/project.git"
    assert p.unresolved_ref == "v1.0"


def test_git_spec_normalizes_scp_urls(strict):
    p = GitProvider(urllib.parse.quote("git@example.org:team/repo.git", safe="") + "/main", strict)
    assert p.repo_url() == "ssh://git@example.org/team/repo.git"


def test_gist_spec(strict):
    p = GistProvider("user/0123abcdef", strict)
    assert (p.user, p.gist_id, p.unresolved_ref) == ("user", "0123abcdef", "HEAD")
    assert GistProvider("user/0123abcdef/" + SHA, strict).unresolved_ref == SHA


HOSTILE_SPECS = [
    ("gh", "../../etc/passwd"),
    ("gh", "org/../main"),
    ("gh", "org/..%2F../main"),
    ("gh", "org/repo\n/main"),
    ("gh", "org\n/repo/main"),
    ("gh", "org/repo\x00/main"),
    ("gh", "org/repo/main\n"),
    ("gh", "org/repo/ma\x00in"),
    ("gh", "-upload-pack=touch /tmp/x/repo/main"),
    ("gh", "ext::sh -c touch% /tmp/pwned/repo/main"),
    ("gh", "örg/repo/main"),
    ("gh", "org/" + "r" * 5000 + "/main\n"),
    ("gl", "..%2F..%2Fetc/main"),
    ("gl", "group%2Frepo%0A/main"),
    ("gl", "justone/main"),
    ("gl", "group%2Frepo"),
    ("gist", "user/not-hex"),
    ("gist", "user/abc\n"),
    ("gist", "../abc"),
    ("gist", "a/b/c/d"),
    ("git", "nourl"),
    ("git", "/main"),
]


@pytest.mark.parametrize("provider,spec", HOSTILE_SPECS)
def test_hostile_specs_are_spec_errors(strict, provider, spec):
    with pytest.raises(SpecError):
        get_provider(provider, spec, strict)


HOSTILE_GIT_URLS = [
    "ext::sh -c touch% /tmp/pwned",
    "-upload-pack=touch /tmp/pwned",
    "--upload-pack=touch /tmp/pwned",
    "file:///etc",
    "/etc",
    "../../etc",
    "http://127.0.0.1/repo.git",
    "http://169.254.169.254/latest/meta-data",
    "ftp://example.org/repo.git",
    "https://example.org/re\npo.git",
    "https://example.org/re\x00po.git",
]


@pytest.mark.parametrize("url", HOSTILE_GIT_URLS)
def test_hostile_git_urls_never_reach_git(strict, url):
    spec = urllib.parse.quote(url, safe="") + "/main"
    with mock.patch.object(providers, "run_git") as run:
        with pytest.raises((SpecError, UnsafeURLError)):
            get_provider("git", spec, strict).resolve()
    run.assert_not_called()


@pytest.mark.parametrize("ref", ["-upload-pack=x", "ma\nin", "ma\x00in", ""])
def test_hostile_refs_never_reach_git(cfg, tmp_path, ref):
    with mock.patch.object(providers, "run_git") as run:
        with pytest.raises(SpecError):
            GitProvider(urllib.parse.quote(str(tmp_path), safe="") + "/" + urllib.parse.quote(ref), cfg).resolve()
    run.assert_not_called()


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(provider=st.sampled_from(sorted(PROVIDERS) + ["nope"]), spec=st.text(max_size=300))
def test_any_text_parses_or_raises_spec_error(strict, provider, spec):
    try:
        result = get_provider(provider, spec, strict)
    except (SpecError, UnsafeURLError):
        return
    assert result.spec == spec.rstrip("/")


_url_chars = st.sampled_from(
    list("abc/.:@%-_~?#[]\\ \n\x00")
    + ["ext::", "..", "%2F", "%00", "%0A", "git@", "http://", "https%3A%2F%2F", "/dataset/", ":99999999"]
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(link=st.lists(_url_chars, max_size=40).map("".join), provider=st.sampled_from(sorted(PROVIDERS)))
def test_url_like_links_parse_or_raise_spec_error(strict, link, provider):
    try:
        parse_link(f"/v2/{provider}/{link}", strict)
    except (SpecError, UnsafeURLError):
        pass


# ---- git ref resolution ----------------------------------------------


def test_gh_master_falls_back_to_head(cfg):
    def fake_ls_remote(settings, url, ref):
        return SHA if ref == "HEAD" else None

    with mock.patch.object(providers, "ls_remote", side_effect=fake_ls_remote):
        resolved = GitHubProvider("org/repo/master", cfg).resolve()
    assert resolved.resolved_ref == SHA
    assert resolved.resolved_spec == f"org/repo/{SHA}"
    assert resolved.build_slug == "org-repo"
    assert resolved.binder_request == "v2/gh/org/repo/master"
    assert resolved.binder_persistent_request == f"v2/gh/org/repo/{SHA}"
    assert resolved.notes == ["No master branch found; using the default branch (HEAD) instead.\n"]


def test_gh_other_missing_ref_does_not_fall_back(cfg):
    with mock.patch.object(providers, "ls_remote", return_value=None) as ls:
        with pytest.raises(RefNotFoundError, match="'nope'"):
            GitHubProvider("org/repo/nope", cfg).resolve()
    assert ls.call_count == 1


def _git(cwd, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def local_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "requirements.txt").write_text("numpy\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    first = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "-a", "v1", "-m", "annotated")
    _git(repo, "tag", "light")
    (repo / "postBuild").write_text("echo hi\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "second")
    _git(repo, "branch", "feature/x")
    second = _git(repo, "rev-parse", "HEAD")
    return repo, first, second


def _resolve(repo, ref, cfg):
    spec = urllib.parse.quote(str(repo), safe="") + "/" + urllib.parse.quote(ref, safe="")
    return GitProvider(spec, cfg).resolve()


def test_local_branch(local_repo, cfg):
    repo, _, second = local_repo
    resolved = _resolve(repo, "main", cfg)
    assert resolved.resolved_ref == second
    assert resolved.repo_url == str(repo)
    assert resolved.content_provider == "git"
    assert _resolve(repo, "feature/x", cfg).resolved_ref == second
    assert _resolve(repo, "HEAD", cfg).resolved_ref == second


@pytest.mark.parametrize("ref", ["v1", "refs/tags/v1"])
def test_local_annotated_tag_gives_the_commit(local_repo, cfg, ref):
    repo, first, _ = local_repo
    tag_object = _git(repo, "rev-parse", "v1")
    assert tag_object != first
    assert _resolve(repo, ref, cfg).resolved_ref == first


def test_local_lightweight_tag(local_repo, cfg):
    repo, first, _ = local_repo
    assert _resolve(repo, "light", cfg).resolved_ref == first


def test_full_sha_is_taken_as_is(local_repo, cfg):
    repo, first, _ = local_repo
    with mock.patch.object(providers, "run_git") as run:
        assert _resolve(repo, first, cfg).resolved_ref == first
    run.assert_not_called()


@pytest.mark.parametrize("ref", ["nope", "mai", "abc1234"])
def test_local_missing_ref(local_repo, cfg, ref):
    repo, _, _ = local_repo
    with pytest.raises(RefNotFoundError) as err:
        _resolve(repo, ref, cfg)
    assert err.value.status == 404
    assert "\n" not in err.value.message


def test_missing_repository(tmp_path, cfg):
    with pytest.raises(RefNotFoundError, match="Could not read the repository"):
        _resolve(tmp_path / "absent", "main", cfg)


def test_local_repo_refused_without_allow_local(local_repo, strict):
    repo, _, _ = local_repo
    with pytest.raises(UnsafeURLError, match="allow_local_repos"):
        _resolve(repo, "main", strict)
