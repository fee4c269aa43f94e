"""banned_specs holds against percent-escaping and against naming the repository through another provider."""

import urllib.parse
from unittest import mock

import pytest

from binderlite import links
from binderlite.errors import BannedSpecError
from binderlite.links import git as git_links
from binderlite.settings import Settings

SHA = "c" * 40
BANNED = Settings(banned_specs="^evil-org/.*", github_host="https://github.com")


@pytest.mark.parametrize(
    "provider, spec",
    [
        ("gh", "evil-org/repo/HEAD"),
        ("gh", "EVIL-ORG/repo/HEAD"),
        ("gh", "evil%2Dorg/repo/HEAD"),  # percent-escaped
        ("gh", "evil%252Dorg/repo/HEAD"),  # escaped twice
        ("git", urllib.parse.quote("https://github.com/evil-org/repo.git", safe="") + "/main"),  # another provider
        ("git", urllib.parse.quote("https://github.com/evil-org/repo", safe="") + "/main"),
        ("git", urllib.parse.quote("git@github.com:evil-org/repo.git", safe="") + "/main"),
        ("gl", urllib.parse.quote("evil-org/repo", safe="") + "/main"),
    ],
)
def test_banned_repositories_stay_banned(provider, spec):
    with (
        mock.patch.object(git_links, "ls_remote", return_value=SHA),
        mock.patch.object(git_links, "check_repo_url", side_effect=lambda url, allow_local=False: url),
    ):
        with pytest.raises(BannedSpecError, match="is not allowed to launch"):
            links.resolve(provider, spec, BANNED)


def test_other_repositories_launch():
    with (
        mock.patch.object(git_links, "ls_remote", return_value=SHA),
        mock.patch.object(git_links, "check_repo_url", side_effect=lambda url, allow_local=False: url),
    ):
        assert links.resolve("gh", "good-org/repo/HEAD", BANNED).resolved_ref == SHA
