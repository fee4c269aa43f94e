"""How users sign in to the hub, configured from binderlite's settings (authenticated mode), and what they may do.

``configure_authenticator(c, settings)`` is all the hub's config calls. In
anonymous mode nobody signs in (binderlite makes temporary users). In
authenticated mode it picks the authenticator (``authenticator``: pam, ldap,
oidc, gitlab, github), whose groups become hub groups; keeps the auth state
(the user's forge token) encrypted with a key made once under ``hub_dir``;
and narrows the ``user`` role: a signed-in user reads their own servers and
opens them, but only binderlite's service starts, stops or changes them, with
the image and limits binderlite chose.

``check_authenticator`` runs first, at ``binderlite prepare``/``up``, in the
hub's config and in ``binderlite status``: a missing setting or secret is one
ConfigError, an unreachable directory or provider one UnavailableError, so
the hub never starts half-configured.
"""

from __future__ import annotations

import grp
import os
import socket
import urllib.parse
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import requests

from binderlite.credentials import load_credentials
from binderlite.errors import ConfigError, UnavailableError
from binderlite.hub.tokens import SERVICE_NAME, persistent_secret
from binderlite.settings import Settings

AUTH_STATE_KEY_FILE = "auth_state_key"
CRYPT_KEY_VARIABLE = "JUPYTERHUB_CRYPT_KEY"
CHECK_TIMEOUT = 5.0
SHADOW = "/etc/shadow"
# A signed-in user: see themselves and their servers, open them, use binderlite's web app; not "servers"
# (start/stop/spawn with options of their own) nor "tokens" (JupyterHub's default "self" has both; the hub
# warns at start that the role lacks "self": on purpose).
USER_SCOPES = [
    "read:users!user",
    "users:activity!user",
    "read:servers!user",
    "access:servers!user",
    f"access:services!service={SERVICE_NAME}",
]
# binderlite's service: users (temporary ones in anonymous mode), servers, one-server tokens; admin:users
# includes admin:auth_state, so in authenticated mode it reads the user's forge token (the access check).
SERVICE_SCOPES = ["admin:users", "servers", "tokens"]
DEFAULT_SCOPES = {
    "oidc": "openid profile email",
    "gitlab": "openid read_user read_api",
    "github": "read:user read:org repo",
}


@dataclass(frozen=True)
class SignIn:
    """What the checks found that the configuration needs: the secrets and the provider's endpoints."""

    client_secret: str = field(default="", repr=False)
    search_password: str = field(default="", repr=False)
    endpoints: dict[str, str] = field(default_factory=dict)


def names(text: str) -> set[str]:
    """A comma-separated setting as a set of names."""
    return {part.strip() for part in text.split(",") if part.strip()}


def _fix(name: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Setting {name} {problem} (authenticator is in use because auth_mode is 'authenticated'). "
        f"Set it in the config file or BINDERLITE_{name.upper()}."
    )


def _secret(settings: Settings, key: str, why: str) -> str:
    value = load_credentials(settings).auth.get(key, "")
    if not value:
        raise ConfigError(f"{why} needs `{key}` in the [auth] table of the secrets file (credentials.toml, mode 0600).")
    return value


def ldap_address(settings: Settings) -> tuple[str, int, bool]:
    """The directory's host, port and whether the connection is TLS from the start (ldaps)."""
    parts = urllib.parse.urlsplit(settings.ldap_url)
    ldaps = parts.scheme == "ldaps"
    return parts.hostname or "", parts.port or (636 if ldaps else 389), ldaps


def _check_ldap(settings: Settings) -> SignIn:
    if not settings.ldap_url:
        raise _fix("ldap_url", "is empty, but authenticator 'ldap' needs the directory's address")
    password = ""
    if not settings.ldap_bind_dn_template:
        if not settings.ldap_user_search_base or not settings.ldap_search_user_dn:
            raise _fix(
                "ldap_bind_dn_template",
                "is empty: give it (e.g. uid={username},ou=people,dc=dept,dc=example), or ldap_user_search_base "
                "and ldap_search_user_dn to look users up",
            )
        password = _secret(settings, "ldap_bind_password", f"Looking users up as {settings.ldap_search_user_dn}")
    elif "{username}" not in settings.ldap_bind_dn_template:
        raise _fix("ldap_bind_dn_template", "must contain {username}, where the name typed in goes")
    host, port, _ = ldap_address(settings)
    try:
        socket.create_connection((host, port), timeout=CHECK_TIMEOUT).close()
    except OSError as exc:
        raise UnavailableError(
            f"The LDAP directory at {settings.ldap_url} does not answer ({exc.strerror or exc}): "
            "is it running and reachable from this machine? Nobody can sign in until it answers."
        ) from None
    return SignIn(search_password=password)


def _discover(settings: Settings) -> dict[str, str]:
    url = settings.oauth_url.rstrip("/") + "/.well-known/openid-configuration"
    try:
        answer = requests.get(url, timeout=CHECK_TIMEOUT)
    except requests.RequestException as exc:
        raise UnavailableError(
            f"The OpenID Connect provider at {settings.oauth_url} does not answer ({exc.__class__.__name__}): "
            "is oauth_url right and the provider reachable? Nobody can sign in until it answers."
        ) from None
    try:
        document = answer.json() if answer.status_code == 200 else {}
    except ValueError:
        document = {}
    wanted = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
    if not all(isinstance(document.get(key), str) for key in wanted):
        raise _fix("oauth_url", f"is {settings.oauth_url!r}, but {url} is no OpenID Connect discovery document")
    return {key: document[key] for key in wanted}


def _check_oauth(settings: Settings) -> SignIn:
    if not settings.oauth_client_id:
        raise _fix("oauth_client_id", f"is empty, but authenticator {settings.authenticator!r} needs it")
    if settings.authenticator == "oidc" and not settings.oauth_url:
        raise _fix("oauth_url", "is empty, but authenticator 'oidc' needs the provider's issuer URL")
    secret = _secret(settings, "oauth_client_secret", f"Authenticator {settings.authenticator!r}")
    endpoints = _discover(settings) if settings.authenticator == "oidc" else {}
    return SignIn(client_secret=secret, endpoints=endpoints)


def _check_pam(settings: Settings) -> SignIn:
    try:
        with open(SHADOW, "rb"):
            pass
    except PermissionError:
        raise ConfigError(
            f"Authenticator 'pam' checks passwords against {SHADOW}, which this process may not read: run the "
            "hub as root (as binderlite's units and `binderlite up` do) or in the shadow group."
        ) from None
    except FileNotFoundError:
        pass  # passwords elsewhere (e.g. sssd): PAM knows
    unknown = sorted(name for name in names(settings.pam_allowed_groups) if not _local_group(name))
    if unknown:
        raise _fix("pam_allowed_groups", f"names groups this machine does not have: {', '.join(unknown)}")
    return SignIn()


def _local_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


CHECKS = {"pam": _check_pam, "ldap": _check_ldap, "oidc": _check_oauth, "gitlab": _check_oauth,
          "github": _check_oauth}  # fmt: skip


def check_authenticator(settings: Settings) -> SignIn:
    """Check the sign-in settings, secrets and servers, and the access rules' groups (anonymous mode: nothing)."""
    if settings.auth_mode != "authenticated":
        return SignIn()
    sign_in = CHECKS[settings.authenticator](settings)
    check_rule_groups(settings, sign_in)
    return sign_in


def check_rule_groups(settings: Settings, sign_in: SignIn) -> None:
    """Refuse an access rule naming a group nobody can be in, where that is known at start.

    PAM's hub groups are local groups; LDAP's are the directory's groups (by cn) under
    ``ldap_group_search_base``, looked up as the authenticator would bind (the search user, else
    anonymously). OAuth providers tell a user's groups only at sign-in: nothing to check.
    """
    wanted = {(rule.name, group) for rule in settings.access_rule_list for group in rule.groups}
    if not wanted or settings.authenticator not in ("pam", "ldap"):
        return
    groups = {group for _, group in wanted}
    if settings.authenticator == "pam":
        missing, where = {g for g in groups if not _local_group(g)}, "are not local groups of this machine"
    elif not settings.ldap_group_search_base:
        missing, where = groups, "cannot be anyone's: ldap_group_search_base is empty, so users have no groups"
    else:
        missing = ldap_missing_groups(settings, sign_in, groups)
        where = f"are not in the LDAP directory under {settings.ldap_group_search_base}"
    named = sorted((rule, group) for rule, group in wanted if group in missing)
    if named:
        listed = "; ".join(f"rule {rule!r} names group {group!r}" for rule, group in named)
        raise ConfigError(
            f"Setting access_rules: {listed}; these groups {where} (authenticator {settings.authenticator!r}), "
            "so nobody could launch what the rule allows. Fix the rule's groups in the config file."
        )


def ldap_connection(settings: Settings, sign_in: SignIn) -> Any:
    """A bound ldap3 connection to the directory, TLS as the authenticator's (the search user, else anonymous)."""
    import ldap3  # the authenticator's own client

    host, port, ldaps = ldap_address(settings)
    tls = ldap3.Tls(ca_certs_file=settings.ldap_ca_file) if settings.ldap_ca_file else None
    seconds = int(CHECK_TIMEOUT)  # ldap3 wants whole seconds
    server = ldap3.Server(host, port=port, use_ssl=ldaps, tls=tls, connect_timeout=seconds)
    user = settings.ldap_search_user_dn or None
    password = (sign_in.search_password or load_credentials(settings).auth.get("ldap_bind_password")) if user else None
    starttls = not ldaps and settings.ldap_starttls
    bind = ldap3.AUTO_BIND_TLS_BEFORE_BIND if starttls else ldap3.AUTO_BIND_NO_TLS
    try:
        return ldap3.Connection(server, user=user, password=password, auto_bind=bind, receive_timeout=seconds)
    except ldap3.core.exceptions.LDAPBindError:
        raise ConfigError(
            f"The LDAP directory at {settings.ldap_url} refused {user or 'an anonymous bind'} looking up the access "
            "rules' groups: check ldap_search_user_dn and ldap_bind_password in the secrets file's [auth] table."
        ) from None
    except ldap3.core.exceptions.LDAPException as exc:
        raise UnavailableError(
            f"The LDAP directory at {settings.ldap_url} could not be asked for the access rules' groups "
            f"({exc.__class__.__name__}): is it running, and is its TLS as ldap_url and ldap_starttls say?"
        ) from None


def ldap_missing_groups(settings: Settings, sign_in: SignIn, groups: set[str]) -> set[str]:
    """Which of ``groups`` (cn) the directory has no entry for under ``ldap_group_search_base``."""
    import ldap3
    from ldap3.utils.conv import escape_filter_chars

    base = settings.ldap_group_search_base
    conn = ldap_connection(settings, sign_in)
    try:
        if not conn.search(base, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[]):
            who = settings.ldap_search_user_dn or "an anonymous bind"
            raise ConfigError(
                f"Setting ldap_group_search_base is {base!r}, which the LDAP directory at {settings.ldap_url} does "
                f"not show to {who}, so the access rules' groups cannot be checked: fix the base, let {who} read "
                "the groups, or set ldap_search_user_dn (password `ldap_bind_password` in the secrets file)."
            )
        found = set()
        for group in groups:
            if conn.search(base, f"(cn={escape_filter_chars(group)})", search_scope=ldap3.SUBTREE, attributes=["cn"]):
                found.add(group)
        return groups - found
    finally:
        conn.unbind()


def auth_state_key(settings: Settings) -> bytes:
    """The 32-byte key that encrypts users' auth state in the hub's database (made once, mode 0600)."""
    return bytes.fromhex(persistent_secret(settings.hub_dir / AUTH_STATE_KEY_FILE))


def hub_roles(settings: Settings) -> list[dict[str, Any]]:
    """The roles the hub loads: binderlite's service, and in authenticated mode the narrowed ``user`` role."""
    service = {
        "name": "binderlite",
        "description": "binderlite's launcher and scheduler: users and their servers",
        "scopes": SERVICE_SCOPES,
        "services": [SERVICE_NAME],
    }
    if settings.auth_mode != "authenticated":
        return [service]
    user = {
        "name": "user",
        "description": "A signed-in user: their own servers, opened, not started",
        "scopes": USER_SCOPES,
    }
    return [service, user]


def _configure_pam(c: Any, settings: Settings, sign_in: SignIn) -> None:
    c.JupyterHub.authenticator_class = "binderlite.hub.authenticators.BinderlitePAMAuthenticator"
    c.PAMAuthenticator.open_sessions = False  # servers run in containers: no login session on this host
    c.PAMAuthenticator.allowed_groups = names(settings.pam_allowed_groups)
    c.Authenticator.allow_all = not settings.pam_allowed_groups


def _configure_ldap(c: Any, settings: Settings, sign_in: SignIn) -> None:
    host, port, ldaps = ldap_address(settings)
    c.JupyterHub.authenticator_class = "binderlite.hub.authenticators.BinderliteLDAPAuthenticator"
    ldap = c.BinderliteLDAPAuthenticator
    ldap.server_address, ldap.server_port = host, port
    ldap.tls_strategy = "on_connect" if ldaps else ("before_bind" if settings.ldap_starttls else "insecure")
    if settings.ldap_ca_file:
        ldap.tls_kwargs = {"ca_certs_file": settings.ldap_ca_file}
    if settings.ldap_bind_dn_template:
        ldap.bind_dn_template = [settings.ldap_bind_dn_template]
    else:
        ldap.lookup_dn = True
        ldap.user_search_base = settings.ldap_user_search_base
        ldap.lookup_dn_search_user = settings.ldap_search_user_dn
        ldap.lookup_dn_search_password = sign_in.search_password
        ldap.lookup_dn_user_dn_attribute = settings.ldap_user_attribute
    ldap.user_attribute = settings.ldap_user_attribute
    ldap.group_search_base = settings.ldap_group_search_base
    ldap.allowed_group_names = names(settings.ldap_allowed_groups)
    c.Authenticator.allow_all = not settings.ldap_allowed_groups


def _configure_oauth(c: Any, settings: Settings, sign_in: SignIn) -> None:
    kind = settings.authenticator
    classes = {
        "oidc": ("generic.GenericOAuthenticator", c.GenericOAuthenticator),
        "gitlab": ("binderlite.hub.authenticators.BinderliteGitLabOAuthenticator", c.GitLabOAuthenticator),
        "github": ("github.GitHubOAuthenticator", c.GitHubOAuthenticator),
    }
    name, oauth = classes[kind]
    c.JupyterHub.authenticator_class = name if name.startswith("binderlite.") else f"oauthenticator.{name}"
    c.OAuthenticator.client_id = settings.oauth_client_id
    c.OAuthenticator.client_secret = sign_in.client_secret
    public = settings.public_url or f"http://{settings.proxy_ip}:{settings.proxy_port}/"
    c.OAuthenticator.oauth_callback_url = public.rstrip("/") + "/hub/oauth_callback"
    scopes = settings.oauth_scopes.split() or DEFAULT_SCOPES[kind].split()
    if kind == "oidc":
        oauth.authorize_url = sign_in.endpoints["authorization_endpoint"]
        oauth.token_url = sign_in.endpoints["token_endpoint"]
        oauth.userdata_url = sign_in.endpoints["userinfo_endpoint"]
        oauth.username_claim = settings.oauth_username_claim
        oauth.auth_state_groups_key = f"oauth_user.{settings.oauth_groups_claim}"
        if not settings.oauth_scopes and settings.oauth_groups_claim not in scopes:
            scopes.append(settings.oauth_groups_claim)
    elif kind == "gitlab" and settings.oauth_url:
        oauth.gitlab_url = settings.oauth_url.rstrip("/")
    elif kind == "github":
        if settings.oauth_url:
            oauth.github_url = settings.oauth_url.rstrip("/")
        oauth.populate_teams_in_auth_state = True
        oauth.auth_state_groups_key = github_groups
    c.OAuthenticator.scope = scopes
    c.OAuthenticator.manage_groups = True
    c.OAuthenticator.allowed_groups = names(settings.oauth_allowed_groups)
    c.Authenticator.allow_all = not settings.oauth_allowed_groups


def github_groups(auth_state: dict) -> list[str]:
    """GitHub's teams as hub groups: ``org/team`` for each team, and ``org`` for each of their organisations."""
    teams = auth_state.get("teams") or []
    orgs = {t["organization"]["login"] for t in teams}
    return sorted(orgs | {f"{t['organization']['login']}/{t['slug']}" for t in teams})


CONFIGURE = {"pam": _configure_pam, "ldap": _configure_ldap, "oidc": _configure_oauth, "gitlab": _configure_oauth,
             "github": _configure_oauth}  # fmt: skip


def configure_authenticator(
    c: Any, settings: Settings, sign_in: SignIn | None = None, environ: MutableMapping[str, str] | None = None
) -> None:
    """Configure the hub's sign-in and the roles for ``settings.auth_mode`` (runs ``check_authenticator``).

    The auth state key reaches JupyterHub as ``JUPYTERHUB_CRYPT_KEY`` in ``environ`` (the hub process's own
    environment): its CryptKeeper is made without the config and reads only that variable.
    """
    c.JupyterHub.load_roles = hub_roles(settings)
    if settings.auth_mode != "authenticated":
        c.JupyterHub.authenticator_class = "null"  # binderlite makes a temporary user per launch
        c.Authenticator.allow_all = True
        return
    sign_in = check_authenticator(settings) if sign_in is None else sign_in
    c.Authenticator.admin_users = names(settings.admin_users)
    c.Authenticator.manage_groups = True  # the authenticator's groups are the hub's (access rules name them)
    c.Authenticator.enable_auth_state = True  # the user's forge token, encrypted with the key below
    (os.environ if environ is None else environ)[CRYPT_KEY_VARIABLE] = auth_state_key(settings).hex()
    c.Authenticator.auto_login = settings.authenticator in ("oidc", "gitlab", "github")
    c.JupyterHub.redirect_to_server = False  # signed in: the hub's home, not a server the user cannot start
    CONFIGURE[settings.authenticator](c, settings, sign_in)
