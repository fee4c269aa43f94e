"""The forge's word on a user's access: ``access.forge.user_can_read`` asks a real forge over HTTP (127.0.0.1).

The forge is ``tests/helpers/forge.py``: alice is a member of the private project
``physics/notebook``, bob is not. Every test also checks that the user's token
appears in no log record and no error message.
"""

from __future__ import annotations

import logging
import re
import subprocess
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import requests

from binderlite.access import forge as forge_check
from binderlite.access.forge import repo_place, user_can_read
from binderlite.errors import FetchError
from binderlite.hub.identity import SignedInUser
from binderlite.settings import Settings, setting_fields
from tests.helpers.forge import Forge
from tests.helpers.net import free_port

PROJECT = "physics/notebook"


def forge_settings(oauth_url: str, authenticator: str = "gitlab"):
    """Settings signing users in through the forge at ``oauth_url``.

    ``authenticator`` and ``oauth_url`` are the hub sign-in's settings; where they are not (yet) part of
    Settings, a stand-in with those two values is all ``user_can_read`` reads.
    """
    if {"authenticator", "oauth_url"} <= {f.name for f in setting_fields()}:
        return Settings(auth_mode="authenticated", authenticator=authenticator, oauth_url=oauth_url)
    return SimpleNamespace(auth_mode="authenticated", authenticator=authenticator, oauth_url=oauth_url)


@pytest.fixture(scope="module")
def forge(tmp_path_factory) -> Forge:
    forge = Forge(tmp_path_factory.mktemp("forge"))
    forge.add_user("alice", "alice-password", ("physics",))
    forge.add_user("bob", "bob-password", ("chemistry",))
    forge.add_project(PROJECT, "requirements", {"alice"})
    forge.add_project("physics/other", "requirements", {"bob"})
    yield forge
    forge.close()


@pytest.fixture
def tokens(forge) -> dict[str, str]:
    return {"alice": forge.token_for("alice"), "bob": forge.token_for("bob")}


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog):
    """Fails a test whose log records (at any level, urllib3's included) carry a token of the forge."""
    caplog.set_level(logging.DEBUG)
    yield
    assert not re.search(r"forge-pat-|oauth2:", caplog.text), caplog.text


def user(name: str, token: str | None, forge: str | None = "gitlab") -> SignedInUser:
    return SignedInUser(name=name, groups=frozenset(), forge=forge, forge_token=token)


def test_a_member_may_read_the_project(forge, tokens):
    assert user_can_read(forge_settings(forge.url), user("alice", tokens["alice"]), forge.repo_url(PROJECT)) is True


def test_someone_else_may_not(forge, tokens):
    assert user_can_read(forge_settings(forge.url), user("bob", tokens["bob"]), forge.repo_url(PROJECT)) is False


@pytest.mark.parametrize(
    "form",
    [
        "{url}/physics/notebook",
        "{url}/physics/notebook/",
        "{url}/physics/notebook.git",
        "git@127.0.0.1:physics/notebook.git",
        "ssh://git@127.0.0.1:2222/physics/notebook.git",
    ],
)
def test_every_way_of_writing_the_repository_gets_the_same_answer(forge, tokens, form):
    url = form.format(url=forge.url)
    settings = forge_settings(forge.url)
    assert user_can_read(settings, user("alice", tokens["alice"]), url) is True
    assert user_can_read(settings, user("bob", tokens["bob"]), url) is False


def test_a_project_that_does_not_exist_may_not_be_read(forge, tokens):
    url = f"{forge.url}/physics/missing.git"
    assert user_can_read(forge_settings(forge.url), user("alice", tokens["alice"]), url) is False


def test_a_revoked_token_reads_nothing(forge, tokens):
    revoked = tokens["alice"]
    del forge.tokens[revoked]
    assert user_can_read(forge_settings(forge.url), user("alice", revoked), forge.repo_url(PROJECT)) is False


def test_the_forge_has_no_say_on_other_hosts_or_for_users_of_other_sign_ins(forge, tokens):
    settings = forge_settings(forge.url)
    alice = user("alice", tokens["alice"])
    other_port = f"http://127.0.0.1:{forge.port + 1}/physics/notebook.git"
    assert user_can_read(settings, alice, other_port) is None
    assert user_can_read(settings, alice, "https://gitlab.example/physics/notebook.git") is None
    assert user_can_read(settings, user("alice", None, forge=None), forge.repo_url(PROJECT)) is None
    assert user_can_read(settings, user("alice", tokens["alice"], forge="oidc"), forge.repo_url(PROJECT)) is None
    assert user_can_read(settings, user("alice", None), forge.repo_url(PROJECT)) is None


def test_a_path_that_names_no_project_is_not_asked_about(forge, tokens, monkeypatch):
    asked = []
    monkeypatch.setattr(forge_check, "_ask", lambda *args: asked.append(args))
    alice = user("alice", tokens["alice"])
    for url in (forge.url, f"{forge.url}/", f"{forge.url}/physics/../admin", f"{forge.url}/a//b"):
        assert user_can_read(forge_settings(forge.url), alice, url) is None
    assert asked == []


def test_github_enterprise_repositories(forge, tokens):
    settings = forge_settings(forge.url, "github")
    assert user_can_read(settings, user("alice", tokens["alice"], "github"), forge.repo_url(PROJECT)) is True
    assert user_can_read(settings, user("bob", tokens["bob"], "github"), forge.repo_url(PROJECT)) is False
    nested = f"{forge.url}/physics/sub/notebook.git"  # GitHub has no nested groups: no repository there
    assert user_can_read(settings, user("alice", tokens["alice"], "github"), nested) is None


def test_github_dot_com_is_asked_through_its_api_host():
    place = repo_place("https://github.com/org/repo.git")
    forge_place = repo_place("https://github.com")
    assert forge_check.api_url("github", "https://github.com", forge_place, place.path) == (
        "https://api.github.com/repos/org/repo"
    )
    assert forge_check.api_url("gitlab", "https://gitlab.com", forge_place, "group/sub/proj") == (
        "https://gitlab.com/api/v4/projects/group%2Fsub%2Fproj"
    )


def test_a_forge_below_a_path_is_asked_below_it(forge, tokens, monkeypatch):
    """A forge at https://host/gitlab: its repositories are below /gitlab, and so is its API."""
    asked = []
    monkeypatch.setattr(forge_check, "_ask", lambda api, *args: asked.append(api) or True)
    settings = forge_settings(f"{forge.url}/gitlab")
    alice = user("alice", tokens["alice"])
    assert user_can_read(settings, alice, forge.repo_url(PROJECT)) is None
    assert user_can_read(settings, alice, f"{forge.url}/gitlab/physics/notebook.git") is True
    assert asked == [f"{forge.url}/gitlab/api/v4/projects/physics%2Fnotebook"]


def test_an_unreachable_forge_is_a_clear_error_without_the_token(tokens):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(FetchError) as caught:
        user_can_read(forge_settings(url), user("alice", tokens["alice"]), f"{url}/physics/notebook.git")
    assert caught.value.status == 502
    assert f"The git forge at {url} could not be reached to check access to physics/notebook" in caught.value.message
    assert tokens["alice"] not in str(caught.value) and tokens["alice"] not in repr(caught.value.__context__)


def test_a_failing_forge_is_a_clear_error_not_a_refusal(forge, tokens):
    forge.broken = True
    try:
        with pytest.raises(FetchError) as caught:
            user_can_read(forge_settings(forge.url), user("alice", tokens["alice"]), forge.repo_url(PROJECT))
    finally:
        forge.broken = False
    assert "answered HTTP 503 when asked about physics/notebook" in caught.value.message
    assert tokens["alice"] not in caught.value.message


# ---- the forge itself behaves as a forge: what the end-to-end test relies on ----------------------------


def sign_in(forge: Forge, username: str, password: str) -> str:
    """The authorization-code flow as a browser and a hub do it; the access token."""
    redirect = "http://127.0.0.1:9/oauth_callback"
    forge.add_client("test-client", "test-secret", redirect)
    session = requests.Session()
    query = {"client_id": "test-client", "response_type": "code", "redirect_uri": redirect, "state": "s1"}
    form = session.get(f"{forge.url}/oauth/authorize", params={**query, "scope": "openid read_user"})
    assert form.status_code == 200 and 'name="password"' in form.text
    answer = session.post(form.url, data={"username": username, "password": password}, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    code = re.search(r"[?&]code=([^&]+)", answer.headers["Location"]).group(1)
    token = requests.post(
        f"{forge.url}/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
        auth=("test-client", "test-secret"),
    )
    assert token.status_code == 200, token.text
    assert "id_token" in token.json()
    return token.json()["access_token"]


def test_sign_in_gives_a_token_the_forge_knows_with_groups(forge):
    token = sign_in(forge, "alice", "alice-password")
    headers = {"Authorization": f"Bearer {token}"}
    info = requests.get(f"{forge.url}/oauth/userinfo", headers=headers).json()
    assert info["preferred_username"] == "alice" and info["groups"] == ["physics"]
    assert requests.get(f"{forge.url}/api/v4/user", headers=headers).json()["username"] == "alice"
    assert [g["full_path"] for g in requests.get(f"{forge.url}/api/v4/groups", headers=headers).json()] == ["physics"]
    discovery = requests.get(f"{forge.url}/.well-known/openid-configuration").json()
    assert discovery["token_endpoint"] == f"{forge.url}/oauth/token"


def test_a_wrong_password_gets_the_form_again(forge):
    forge.add_client("test-client", "test-secret", "http://127.0.0.1:9/oauth_callback")
    query = {"client_id": "test-client", "response_type": "code", "redirect_uri": "http://127.0.0.1:9/oauth_callback"}
    answer = requests.post(f"{forge.url}/oauth/authorize", params=query, data={"username": "alice", "password": "x"})
    assert answer.status_code == 401 and "Invalid username or password." in answer.text


def test_git_reads_with_a_members_token_or_the_deploy_credential_only(forge, tmp_path):
    alice = sign_in(forge, "alice", "alice-password")
    bob = sign_in(forge, "bob", "bob-password")

    def ls_remote(credential: str | None) -> subprocess.CompletedProcess:
        url = forge.repo_url(PROJECT)
        if credential:
            user_part, _, secret = credential.partition(":")
            url = url.replace("http://", f"http://{quote(user_part)}:{quote(secret, safe='')}@")
        return subprocess.run(
            ["git", "ls-remote", url, "HEAD"],
            capture_output=True,
            text=True,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            timeout=30,
        )

    assert ls_remote(f"oauth2:{alice}").returncode == 0
    assert ls_remote(":".join(forge.deploy)).returncode == 0
    refused = ls_remote(f"oauth2:{bob}")
    assert refused.returncode != 0 and "not found" in refused.stderr
    anonymous = ls_remote(None)
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr
