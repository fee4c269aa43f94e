"""Image names must match BinderHub's, so images built by either are found by both."""

from __future__ import annotations

import hashlib
import re
from unittest import mock

from binderlite.links import git as providers
from binderlite.links.git import GitHubProvider, GitLabProvider, GitProvider
from binderlite.links.imagenames import MAX_NAME_LENGTH, image_name, safe_build_slug
from binderlite.settings import Settings


def test_binderhub_example():
    assert image_name("", "binder-examples-octave", "1479e02") == "binder-2dexamples-2doctave-03025a:1479e02"


def test_prefix_is_kept():
    assert image_name("r2d-", "binder-examples-octave", "1479e02") == "r2d-binder-2dexamples-2doctave-03025a:1479e02"
    assert image_name("127.0.0.1:5000/binderlite/", "a-b", "x").startswith("127.0.0.1:5000/binderlite/a-2db-")


def test_hash_is_of_the_unescaped_slug():
    slug = "Org_Name-Repo.Name"
    digest = hashlib.sha256(slug.encode()).hexdigest()[:6]
    assert safe_build_slug(slug, limit=255) == f"org-5fname-2drepo-2ename-{digest}"


def test_uppercase_and_underscores():
    name = image_name("My_Prefix/", "UPPER_case", "ABC_def")
    assert name == name.lower()
    assert "_" not in name
    assert name.startswith("my-prefix/upper-5fcase-")
    assert name.endswith(":abc-def")


def test_length_limit_255():
    for prefix in ("", "binderlite/", "registry.example.org:5000/" + "p" * 100 + "/"):
        name = image_name(prefix, "x" * 1000, "a" * 40)
        repository, _, tag = name.rpartition(":")
        assert len(repository) == MAX_NAME_LENGTH
        assert tag == "a" * 40
        assert re.fullmatch(r"[a-z0-9]{6}", repository[-6:])


def test_distinct_slugs_stay_distinct_after_truncation():
    assert image_name("", "x" * 300 + "a", "r") != image_name("", "x" * 300 + "b", "r")


def test_only_docker_safe_characters():
    name = image_name("", "https://example.org:8443/a b/ü.git", "r")
    assert re.fullmatch(r"[a-z0-9-]+:r", name)


def test_gh_gl_git_slugs(tmp_path):
    cfg = Settings(state_dir=str(tmp_path), allow_local_repos=True)
    sha = "b" * 40
    with mock.patch.object(providers, "ls_remote", return_value=sha):
        gh = GitHubProvider("binder-examples/octave/HEAD", cfg).resolve()
        gl = GitLabProvider("group%2Fsub-group%2Fmy-repo/main", cfg).resolve()
        git = GitProvider("https%3A%2F%2Fexample.org%2Fa%2Fb.git/main", cfg).resolve()
    assert gh.build_slug == "binder-examples-octave"
    assert gh.image("") == f"binder-2dexamples-2doctave-03025a:{sha}"
    assert gl.build_slug == "group-sub_-group-my_-repo"
    assert gl.image("").startswith("group-2dsub-5f-2dgroup-2dmy-5f-2drepo-")
    assert git.build_slug == "https://example.org/a/b.git"
    assert git.image("r2d-").startswith("r2d-https-3a-2f-2fexample-2eorg-2fa-2fb-2egit-")
