"""The web app in authenticated mode: sign-in through the hub, the gate on pages and the build API, the pages.

The hub is faked at its edges (the token check, the code exchange, the user
model); the cookies, the OAuth state and the gate are the app's real ones.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer

from binderlite import links
from binderlite.hub.identity import SignedInUser
from binderlite.hub.tokens import persistent_secret
from binderlite.settings import Settings
from binderlite.web import home, signin
from binderlite.web.app import create_app

STREAM = {"Accept": "text/event-stream"}
RULE = {
    "name": "physics-teaching",
    "pattern": "^gh/physics/.*",
    "groups": ["physics"],
    "contact": "physics-it@dept.example",
}
USERS = {
    "tok-alice": SignedInUser("alice", frozenset({"physics"})),
    "tok-bob": SignedInUser("bob", frozenset({"chemistry"})),
}
GIT_LINK = "/v2/git/https%3A%2F%2Fgit.dept.example%2Fphysics%2Fintro.git/HEAD?urlpath=lab"


@pytest.fixture
def settings(tmp_path):
    return Settings(
        state_dir=str(tmp_path),
        auth_mode="authenticated",
        public_url="https://binder.dept.example/",
        binder_launch_host="https://binder.dept.example/",
        access_rules=json.dumps([RULE]),
    )


@pytest.fixture
def client(settings, monkeypatch):
    monkeypatch.setattr(signin, "identify", lambda settings, token: USERS.get(token))
    app = create_app(settings)
    app.config.update(STREAM_KEEPALIVE=0.05, STREAM_LINGER=0)
    return app.test_client()


@pytest.fixture
def resolves(monkeypatch):
    """Records every attempt to resolve a link (the first step of any build)."""
    calls = []

    def resolve(provider, spec, settings):
        calls.append((provider, spec))
        raise AssertionError("nothing may be resolved here")

    monkeypatch.setattr(links, "resolve", resolve)
    return calls


def sign_in(client, settings, token: str) -> None:
    value = signin.session_cookie_value(settings, token)
    for path in signin.COOKIE_PATHS:
        client.set_cookie(signin.COOKIE, value, path=path, domain="localhost")


def test_signed_out_build_request_gets_401_and_starts_nothing(client, resolves):
    response = client.get("/build/gh/physics/intro/HEAD", headers=STREAM)
    assert response.status_code == 401
    assert "Sign in first" in response.get_json()["message"]
    assert resolves == []


def test_signed_out_launch_link_goes_to_the_hubs_sign_in_and_back_to_the_same_link(client, settings, monkeypatch):
    response = client.get(GIT_LINK)
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "https://binder.dept.example/hub/api/oauth2/authorize"
    query = parse_qs(target.query)
    assert query["client_id"] == ["service-binderlite"]
    assert query["redirect_uri"] == ["https://binder.dept.example/oauth_callback"]
    state_cookie = client.get_cookie(signin.STATE_COOKIE, path="/oauth_callback")
    assert state_cookie is not None and state_cookie.http_only

    exchanged = {}

    class Reply:
        status_code = 200

        @staticmethod
        def json():
            return {"access_token": "tok-alice"}

    def post(url, data, timeout):
        exchanged.update(url=url, **data)
        return Reply()

    monkeypatch.setattr(signin.requests, "post", post)
    back = client.get(f"/oauth_callback?code=the-code&state={query['state'][0]}")
    assert back.status_code == 302 and back.headers["Location"] == GIT_LINK  # %2F kept: the same launch
    assert exchanged["code"] == "the-code" and exchanged["url"].endswith("/hub/api/oauth2/token")
    assert exchanged["redirect_uri"] == "https://binder.dept.example/oauth_callback"
    cookies = back.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith(signin.COOKIE + "=")]
    assert sorted(c.split("Path=")[1].split(";")[0] for c in session) == sorted(signin.COOKIE_PATHS)
    assert all("HttpOnly" in c and "Secure" in c and "SameSite=Lax" in c for c in session)
    assert not any("Path=/;" in c or c.endswith("Path=/") for c in session), "never on / (it would reach /user/)"
    page = client.get(GIT_LINK)
    assert page.status_code == 200 and b"alice" in page.data


def test_a_callback_with_a_wrong_or_missing_state_signs_nobody_in(client, monkeypatch):
    monkeypatch.setattr(signin.requests, "post", lambda *a, **k: pytest.fail("no code exchange without state"))
    client.get("/v2/gh/physics/intro/HEAD")
    response = client.get("/oauth_callback?code=c&state=not-the-state")
    assert response.status_code == 400 and b"open the link again" in response.data


def test_a_next_address_on_another_site_is_not_followed(client, settings, monkeypatch):
    assert signin._safe_next("//evil.example/x") == "/home/"
    assert signin._safe_next("https://evil.example/") == "/home/"
    assert signin._safe_next("/v2/gh/a/b/HEAD") == "/v2/gh/a/b/HEAD"


def test_a_forged_cookie_is_no_sign_in(client, resolves):
    client.set_cookie(signin.COOKIE, "tok-alice", path="/build/", domain="localhost")
    assert client.get("/build/gh/physics/intro/HEAD", headers=STREAM).status_code == 401
    other_key = URLSafeTimedSerializer("another-secret", salt="session").dumps("tok-alice")
    client.set_cookie(signin.COOKIE, other_key, path="/build/", domain="localhost")
    assert client.get("/build/gh/physics/intro/HEAD", headers=STREAM).status_code == 401
    assert resolves == []


def test_an_expired_cookie_or_a_token_the_hub_refuses_is_no_sign_in(client, settings, resolves, monkeypatch):
    secret = persistent_secret(settings.hub_dir / "web_cookie_secret")
    old = URLSafeTimedSerializer(secret, salt="session")
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    stale = old.dumps("tok-alice")
    monkeypatch.undo()
    monkeypatch.setattr(signin, "identify", lambda settings, token: USERS.get(token))
    client.set_cookie(signin.COOKIE, stale, path="/build/", domain="localhost")
    assert client.get("/build/gh/physics/intro/HEAD", headers=STREAM).status_code == 401
    sign_in(client, settings, "tok-revoked")
    assert client.get("/build/gh/physics/intro/HEAD", headers=STREAM).status_code == 401
    assert resolves == []


def test_the_landing_page_moves_to_home_and_shows_who_is_signed_in_and_their_servers(client, settings, monkeypatch):
    assert client.get("/").headers["Location"].endswith("/home/")
    assert client.get("/home/").status_code == 302  # signed out: to the sign-in

    class FakeHub:
        def __init__(self, settings):
            pass

        def user(self, name):
            servers = {
                "intro-1234abcd": {"ready": True, "user_options": {"repo_url": "https://git.dept.example/intro.git"}}
            }
            return {"name": name, "servers": servers}

    monkeypatch.setattr(home, "HubClient", FakeHub)
    sign_in(client, settings, "tok-alice")
    page = client.get("/home/").get_data(as_text=True)
    assert 'id="signed-in-user">alice<' in page and 'id="sign-out"' in page
    assert "https://git.dept.example/intro.git" in page
    assert 'href="https://binder.dept.example/user/alice/intro-1234abcd/"' in page
    assert "/servers/intro-1234abcd/stop" in page


def test_stopping_a_server_needs_the_pages_token(client, settings, monkeypatch):
    stopped = []

    class FakeHub:
        def __init__(self, settings):
            pass

        def user(self, name):
            return {"name": name, "servers": {"intro-1234abcd": {"ready": True, "user_options": {}}}}

        def stop_server(self, user, server):
            stopped.append((user, server))

    monkeypatch.setattr(home, "HubClient", FakeHub)
    sign_in(client, settings, "tok-alice")
    assert client.post("/servers/intro-1234abcd/stop", data={"csrf": "made-up"}).status_code == 403
    page = client.get("/home/").get_data(as_text=True)
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    assert client.post("/servers/nope/stop", data={"csrf": csrf}).status_code == 404
    response = client.post("/servers/intro-1234abcd/stop", data={"csrf": csrf})
    assert response.status_code == 303 and stopped == [("alice", "intro-1234abcd")]


def test_someone_no_rule_allows_gets_the_403_page_naming_the_rule_and_contact(client, settings, resolves):
    sign_in(client, settings, "tok-bob")
    page = client.get("/v2/gh/physics/intro/HEAD")
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    assert 'id="refusing-rule">physics-teaching<' in text and 'id="contact">physics-it@dept.example<' in text
    api = client.get("/build/gh/physics/intro/HEAD", headers=STREAM)
    assert api.status_code == 403 and api.get_json()["rule"] == "physics-teaching"
    assert resolves == []


def test_sign_out_forgets_the_cookie_and_signs_out_of_the_hub(client, settings):
    sign_in(client, settings, "tok-alice")
    response = client.get("/signout")
    assert response.headers["Location"] == "https://binder.dept.example/hub/logout"
    cleared = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(signin.COOKIE + "=;")]
    assert len(cleared) == len(signin.COOKIE_PATHS)


def test_anonymous_mode_has_no_gate_and_no_sign_in_routes(tmp_path, resolves):
    client = create_app(Settings(state_dir=str(tmp_path))).test_client()
    assert client.get("/").status_code == 200
    assert client.get("/oauth_callback").status_code == 404
    assert client.get("/home/").status_code == 404


def test_forge_token_and_groups_come_from_the_hubs_user_model():
    user = signin.user_from_model(
        {
            "name": "carol",
            "groups": ["physics"],
            "admin": False,
            "auth_state": {"access_token": "glpat-secret", "gitlab_user": {"username": "carol"}},
        }
    )
    assert (user.name, user.groups, user.forge, user.forge_token) == (
        "carol",
        frozenset({"physics"}),
        "gitlab",
        "glpat-secret",
    )
    assert "glpat-secret" not in repr(user)
    assert signin.user_from_model({"name": "dave", "auth_state": {"access_token": "x"}}).forge_token is None


def test_the_cli_does_not_make_temporary_users_in_authenticated_mode(tmp_path):
    from click.testing import CliRunner

    from binderlite.cli import main

    config = tmp_path / "binderlite.toml"
    config.write_text(f'auth_mode = "authenticated"\nstate_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "launch", "gh/org/repo/HEAD"])
    assert result.exit_code != 0
    assert "open the link in a browser" in result.output and "Traceback" not in result.output
