"""Sign-in configured from binderlite's settings: the authenticator, its groups, the roles, the startup checks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from traitlets.config import Config

from binderlite.errors import ConfigError, UnavailableError
from binderlite.hub import auth
from binderlite.hub.tokens import SERVICE_NAME
from binderlite.services.status import sign_in_problems
from binderlite.settings import Settings, load_settings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def listening_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def secrets_file(tmp_path, text: str) -> str:
    path = tmp_path / "credentials.toml"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def settings_for(tmp_path, **values) -> Settings:
    if "credentials_file" not in values:
        values["credentials_file"] = secrets_file(tmp_path, "")
    return Settings(state_dir=str(tmp_path / "state"), auth_mode="authenticated", **values)


def configured(settings: Settings, sign_in: auth.SignIn | None = None, environ: dict | None = None) -> Config:
    c = Config()
    auth.configure_authenticator(c, settings, sign_in, {} if environ is None else environ)
    return c


def role(c: Config, name: str) -> dict:
    return next(r for r in c.JupyterHub.load_roles if r["name"] == name)


def test_anonymous_mode_has_no_sign_in_and_leaves_the_user_role_alone(tmp_path):
    c = configured(Settings(state_dir=str(tmp_path)))
    assert c.JupyterHub.authenticator_class == "null"
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["binderlite"]
    assert not (tmp_path / "hub" / auth.AUTH_STATE_KEY_FILE).exists()


def test_the_user_role_opens_own_servers_but_cannot_start_stop_or_mint_tokens(tmp_path):
    c = configured(settings_for(tmp_path), auth.SignIn())
    scopes = role(c, "user")["scopes"]
    assert "access:servers!user" in scopes
    assert f"access:services!service={SERVICE_NAME}" in scopes
    for power in ("self", "servers", "servers!user", "tokens", "tokens!user", "admin:servers"):
        assert power not in scopes
    assert role(c, "binderlite")["scopes"] == ["admin:users", "servers", "tokens"]
    assert role(c, "binderlite")["services"] == [SERVICE_NAME]


def test_pam_is_the_default_with_local_groups_and_admins(tmp_path):
    settings = settings_for(tmp_path, admin_users="ada, grace", pam_allowed_groups="lab")
    assert settings.authenticator == "pam"
    c = configured(settings, auth.SignIn())
    assert c.JupyterHub.authenticator_class.endswith("BinderlitePAMAuthenticator")
    assert c.Authenticator.admin_users == {"ada", "grace"}
    assert c.Authenticator.manage_groups is True
    assert c.PAMAuthenticator.open_sessions is False
    assert c.PAMAuthenticator.allowed_groups == {"lab"}
    assert c.Authenticator.allow_all is False


def test_auth_state_is_encrypted_with_a_key_made_once_and_kept_private(tmp_path):
    settings = settings_for(tmp_path)
    first, again = {}, {}
    c = configured(settings, auth.SignIn(), first)
    configured(settings, auth.SignIn(), again)
    assert c.Authenticator.enable_auth_state is True
    key = first["JUPYTERHUB_CRYPT_KEY"]
    assert len(bytes.fromhex(key)) == 32 and again == first
    key_file = settings.hub_dir / auth.AUTH_STATE_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_jupyterhubs_crypt_keeper_takes_the_key(tmp_path, monkeypatch):
    from jupyterhub.crypto import CryptKeeper, decrypt, encrypt

    environ = {}
    configured(settings_for(tmp_path), auth.SignIn(), environ)
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", environ["JUPYTERHUB_CRYPT_KEY"])
    monkeypatch.setattr(CryptKeeper, "_instance", None)
    secret = {"access_token": "glpat-never-in-clear"}

    async def round_trip():
        sealed = await encrypt(secret)
        return sealed, await decrypt(sealed)

    sealed, opened = asyncio.run(round_trip())
    assert b"glpat" not in sealed
    assert opened == secret
    monkeypatch.setattr(CryptKeeper, "_instance", None)


def test_ldap_with_a_dn_template_and_starttls(tmp_path, listening_port):
    settings = settings_for(
        tmp_path,
        authenticator="ldap",
        ldap_url=f"ldap://127.0.0.1:{listening_port}",
        ldap_bind_dn_template="uid={username},ou=people,dc=dept,dc=example",
        ldap_group_search_base="ou=groups,dc=dept,dc=example",
        ldap_allowed_groups="physics,chemistry",
    )
    c = configured(settings)
    ldap = c.BinderliteLDAPAuthenticator
    assert c.JupyterHub.authenticator_class.endswith("BinderliteLDAPAuthenticator")
    assert (ldap.server_address, ldap.server_port, ldap.tls_strategy) == ("127.0.0.1", listening_port, "before_bind")
    assert ldap.bind_dn_template == ["uid={username},ou=people,dc=dept,dc=example"]
    assert ldap.group_search_base == "ou=groups,dc=dept,dc=example"
    assert ldap.allowed_group_names == {"physics", "chemistry"}
    assert c.Authenticator.allow_all is False


def test_ldaps_and_plain_ldap_and_looking_users_up(tmp_path):
    ldaps = settings_for(tmp_path, authenticator="ldap", ldap_url="ldaps://dir.dept.example")
    assert auth.ldap_address(ldaps) == ("dir.dept.example", 636, True)
    c = Config()
    auth._configure_ldap(c, ldaps.with_overrides(ldap_bind_dn_template="uid={username}"), auth.SignIn())
    assert c.BinderliteLDAPAuthenticator.tls_strategy == "on_connect"
    lookup = ldaps.with_overrides(
        ldap_url="ldap://127.0.0.1:1389",
        ldap_starttls=False,
        ldap_user_search_base="ou=people,dc=x",
        ldap_search_user_dn="cn=reader,dc=x",
    )
    c = Config()
    auth._configure_ldap(c, lookup, auth.SignIn(search_password="reader-pw"))
    ldap = c.BinderliteLDAPAuthenticator
    assert ldap.tls_strategy == "insecure"
    assert ldap.lookup_dn is True
    assert (ldap.user_search_base, ldap.lookup_dn_search_user) == ("ou=people,dc=x", "cn=reader,dc=x")
    assert ldap.lookup_dn_search_password == "reader-pw"
    assert c.Authenticator.allow_all is True


def test_an_unreachable_directory_is_one_clear_error(tmp_path):
    port = closed_port()
    settings = settings_for(
        tmp_path, authenticator="ldap", ldap_url=f"ldap://127.0.0.1:{port}", ldap_bind_dn_template="uid={username}"
    )
    with pytest.raises(UnavailableError) as caught:
        auth.check_authenticator(settings)
    assert f"ldap://127.0.0.1:{port} does not answer" in caught.value.message
    assert caught.value.exit_code == 4
    assert sign_in_problems(settings) == [f"sign-in (ldap): {caught.value.message}"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"ldap_url": ""}, "ldap_url"),
        ({"ldap_url": "ldap://127.0.0.1:1", "ldap_bind_dn_template": ""}, "ldap_bind_dn_template"),
        ({"ldap_url": "ldap://127.0.0.1:1", "ldap_bind_dn_template": "uid=someone,dc=x"}, "{username}"),
    ],
)
def test_ldap_settings_that_cannot_work_name_the_setting(tmp_path, values, named):
    with pytest.raises(ConfigError) as caught:
        auth.check_authenticator(settings_for(tmp_path, authenticator="ldap", **values))
    assert named in caught.value.message


def test_looking_users_up_needs_the_password_from_the_secrets_file(tmp_path):
    settings = settings_for(
        tmp_path,
        authenticator="ldap",
        ldap_url="ldap://127.0.0.1:1",
        ldap_user_search_base="ou=people,dc=x",
        ldap_search_user_dn="cn=reader,dc=x",
    )
    with pytest.raises(ConfigError, match="ldap_bind_password"):
        auth.check_authenticator(settings)


@pytest.mark.parametrize("bad", ["http://dir.example", "ldap://", "ldap://dir.example/ou=x", "ldap://dir:port"])
def test_a_malformed_ldap_url_is_refused_at_load(bad):
    with pytest.raises(ConfigError, match="ldap_url"):
        load_settings(config_file=os.devnull, environ={"BINDERLITE_LDAP_URL": bad})


def test_an_unknown_authenticator_is_refused_at_load():
    with pytest.raises(ConfigError, match="authenticator"):
        load_settings(config_file=os.devnull, environ={"BINDERLITE_AUTHENTICATOR": "kerberos"})


class Discovery(BaseHTTPRequestHandler):
    document: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps(self.document).encode()
        ok = self.path == "/realms/dept/.well-known/openid-configuration"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    base = f"http://127.0.0.1:{server.server_port}/realms/dept"
    Discovery.document = {
        "issuer": base,
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "userinfo_endpoint": base + "/userinfo",
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield base
    server.shutdown()


def oauth_settings(tmp_path, **values) -> Settings:
    secret = secrets_file(tmp_path, '[auth]\noauth_client_secret = "s3cret-value"\n')
    return settings_for(tmp_path, oauth_client_id="binderlite", credentials_file=secret, **values)


def test_oidc_reads_the_providers_endpoints_and_maps_the_groups_claim(tmp_path, provider):
    settings = oauth_settings(
        tmp_path,
        authenticator="oidc",
        oauth_url=provider,
        oauth_groups_claim="roles",
        oauth_allowed_groups="staff",
        public_url="https://binder.dept.example/",
    )
    c = configured(settings)
    generic = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "oauthenticator.generic.GenericOAuthenticator"
    assert (generic.authorize_url, generic.token_url) == (provider + "/authorize", provider + "/token")
    assert generic.userdata_url == provider + "/userinfo"
    assert generic.auth_state_groups_key == "oauth_user.roles"
    assert generic.username_claim == "preferred_username"
    assert c.OAuthenticator.scope == ["openid", "profile", "email", "roles"]
    assert c.OAuthenticator.client_secret == "s3cret-value"
    assert c.OAuthenticator.oauth_callback_url == "https://binder.dept.example/hub/oauth_callback"
    assert c.OAuthenticator.allowed_groups == {"staff"}
    assert c.OAuthenticator.manage_groups is True
    assert c.Authenticator.enable_auth_state is True
    assert "s3cret-value" not in repr(auth.check_authenticator(settings))


def test_oidc_provider_unreachable_or_not_a_provider(tmp_path, provider):
    gone = oauth_settings(tmp_path, authenticator="oidc", oauth_url=f"http://127.0.0.1:{closed_port()}/x")
    with pytest.raises(UnavailableError, match="does not answer"):
        auth.check_authenticator(gone)
    wrong = oauth_settings(tmp_path, authenticator="oidc", oauth_url=provider + "/elsewhere")
    with pytest.raises(ConfigError, match="no OpenID Connect discovery document"):
        auth.check_authenticator(wrong)


def test_oauth_needs_a_client_id_and_the_secret_in_the_secrets_file(tmp_path):
    with pytest.raises(ConfigError, match="oauth_client_id"):
        auth.check_authenticator(settings_for(tmp_path, authenticator="gitlab"))
    no_secret = settings_for(tmp_path, authenticator="gitlab", oauth_client_id="binderlite")
    with pytest.raises(ConfigError, match=r"oauth_client_secret.*\[auth\]"):
        auth.check_authenticator(no_secret)


def test_gitlab_and_github(tmp_path):
    gitlab = oauth_settings(tmp_path, authenticator="gitlab", oauth_url="https://git.dept.example/")
    c = configured(gitlab)
    assert c.JupyterHub.authenticator_class.endswith("BinderliteGitLabOAuthenticator")
    assert c.GitLabOAuthenticator.gitlab_url == "https://git.dept.example"
    assert "read_api" in c.OAuthenticator.scope
    assert c.Authenticator.allow_all is True
    github = configured(oauth_settings(tmp_path, authenticator="github", oauth_scopes="read:user repo"))
    assert github.JupyterHub.authenticator_class == "oauthenticator.github.GitHubOAuthenticator"
    assert github.OAuthenticator.scope == ["read:user", "repo"]
    teams = [{"organization": {"login": "dept"}, "slug": "physics"}, {"organization": {"login": "dept"}, "slug": "it"}]
    assert github.GitHubOAuthenticator.auth_state_groups_key({"teams": teams}) == ["dept", "dept/it", "dept/physics"]


def test_status_says_nothing_when_sign_in_works_or_nobody_signs_in(tmp_path, listening_port):
    assert sign_in_problems(Settings(state_dir=str(tmp_path))) == []
    ok = settings_for(
        tmp_path,
        authenticator="ldap",
        ldap_url=f"ldap://127.0.0.1:{listening_port}",
        ldap_bind_dn_template="uid={username}",
    )
    assert sign_in_problems(ok) == []


def test_culling_stops_a_signed_in_users_idle_server_but_never_deletes_the_user():
    from binderlite.scheduler.cull import decide
    from tests.unit.test_culler import NOW, FakeAdmin, user

    signed_in = Settings(auth_mode="authenticated", cull_idle_timeout=600, cull_max_age=3600)
    decisions = decide(signed_in, FakeAdmin([user("alice", 2000, 700), user("bob", 9000, 10)]), NOW)
    assert sorted((d.user, d.delete_user) for d in decisions) == [("alice", False), ("bob", False)]


def test_pam_refuses_a_local_group_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "SHADOW", str(tmp_path / "no-shadow-here"))  # passwords elsewhere: not checked
    with pytest.raises(ConfigError, match="pam_allowed_groups.*bltest-no-such-group"):
        auth.check_authenticator(settings_for(tmp_path, pam_allowed_groups="root, bltest-no-such-group"))
    assert auth.check_authenticator(settings_for(tmp_path, pam_allowed_groups="root")) == auth.SignIn()


def test_pam_says_the_hub_needs_root_or_the_shadow_group(tmp_path, monkeypatch):
    settings = settings_for(tmp_path)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # what a user outside the shadow group gets

    monkeypatch.setattr("builtins.open", refused)
    with pytest.raises(ConfigError, match="run the hub as root .* or in the shadow group"):
        auth.check_authenticator(settings)


def rules(*groups: str) -> str:
    return json.dumps([{"name": "physics-teaching", "pattern": "^git/", "groups": list(groups)}])


def test_pam_refuses_an_access_rule_naming_a_group_this_machine_does_not_have(tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "SHADOW", str(tmp_path / "no-shadow-here"))
    with pytest.raises(ConfigError) as caught:
        auth.check_authenticator(settings_for(tmp_path, access_rules=rules("root", "bltest-no-such-group")))
    assert "rule 'physics-teaching' names group 'bltest-no-such-group'" in caught.value.message
    assert "not local groups of this machine" in caught.value.message and "'root'" not in caught.value.message
    assert auth.check_authenticator(settings_for(tmp_path, access_rules=rules("root"))) == auth.SignIn()


@pytest.fixture
def directory(monkeypatch):
    """An in-memory directory (ldap3's mock) with ou=groups,dc=x holding physics, a new connection each time."""
    import ldap3

    def connection(settings, sign_in):
        conn = ldap3.Connection(ldap3.Server("mock"), client_strategy=ldap3.MOCK_SYNC)
        conn.strategy.add_entry("ou=groups,dc=x", {"objectClass": ["organizationalUnit"], "ou": "groups"})
        conn.strategy.add_entry("cn=physics,ou=groups,dc=x", {"objectClass": ["groupOfNames"], "cn": "physics"})
        conn.bind()
        return conn

    monkeypatch.setattr(auth, "ldap_connection", connection)


def ldap_rule_settings(tmp_path, port: int, **values) -> Settings:
    values = {"ldap_group_search_base": "ou=groups,dc=x", **values}
    return settings_for(
        tmp_path, authenticator="ldap", ldap_url=f"ldap://127.0.0.1:{port}", ldap_bind_dn_template="uid={username}",
        **values,
    )  # fmt: skip


def test_ldap_looks_the_access_rules_groups_up_in_the_directory(tmp_path, listening_port, directory):
    assert auth.check_authenticator(ldap_rule_settings(tmp_path, listening_port, access_rules=rules("physics")))
    settings = ldap_rule_settings(tmp_path, listening_port, access_rules=rules("physics", "astrology"))
    with pytest.raises(ConfigError) as caught:
        auth.check_authenticator(settings)
    assert "rule 'physics-teaching' names group 'astrology'" in caught.value.message
    assert "not in the LDAP directory under ou=groups,dc=x" in caught.value.message
    assert sign_in_problems(settings) == [f"sign-in (ldap): {caught.value.message}"]


def test_ldap_refuses_rule_groups_it_cannot_check_or_nobody_can_have(tmp_path, listening_port, directory):
    hidden = ldap_rule_settings(tmp_path, listening_port, ldap_group_search_base="ou=hidden,dc=x")
    with pytest.raises(ConfigError, match="ldap_group_search_base is 'ou=hidden,dc=x'.*does not show"):
        auth.check_authenticator(hidden.with_overrides(access_rules=rules("physics")))
    assert auth.check_authenticator(hidden) == auth.SignIn()  # no rule names a group: nothing looked up
    no_groups = ldap_rule_settings(tmp_path, listening_port, ldap_group_search_base="", access_rules=rules("physics"))
    with pytest.raises(ConfigError, match="names group 'physics'.*ldap_group_search_base is empty"):
        auth.check_authenticator(no_groups)


def test_the_groups_are_looked_up_as_the_search_user_when_there_is_one(tmp_path, monkeypatch):
    import ldap3

    binds = []
    monkeypatch.setattr(ldap3, "Connection", lambda server, **kwargs: binds.append(kwargs) or None)
    settings = settings_for(
        tmp_path,
        authenticator="ldap",
        ldap_url="ldap://127.0.0.1:1",
        ldap_search_user_dn="cn=reader,dc=x",
        credentials_file=secrets_file(tmp_path, '[auth]\nldap_bind_password = "reader-pw"\n'),
    )
    auth.ldap_connection(settings, auth.SignIn())
    auth.ldap_connection(settings.with_overrides(ldap_search_user_dn="", ldap_starttls=False), auth.SignIn())
    assert [(b["user"], b["password"], b["auto_bind"]) for b in binds] == [
        ("cn=reader,dc=x", "reader-pw", ldap3.AUTO_BIND_TLS_BEFORE_BIND),
        (None, None, ldap3.AUTO_BIND_NO_TLS),
    ]


def test_oauth_groups_are_known_only_at_sign_in_so_rules_are_not_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "ldap_connection", lambda *args: pytest.fail("looked up"))
    for kind in ("oidc", "gitlab", "github"):
        settings = settings_for(tmp_path, authenticator=kind, access_rules=rules("any-provider-group"))
        auth.check_rule_groups(settings, auth.SignIn())  # no error: the provider says at sign-in
