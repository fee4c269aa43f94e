"""The authenticators the hub runs in authenticated mode: upstream's classes, each reporting the user's groups.

JupyterHub turns the ``groups`` of an authenticator's answer into hub groups
(``Authenticator.manage_groups``); the access rules name those groups. PAM
reports the account's local groups, LDAP the directory's groups the user is a
member of (by cn), GitLab the groups the user belongs to (full paths). The
generic OpenID Connect class reads a claim and GitHub's teams need no class
of their own (``binderlite.hub.auth`` configures both). Only the hub process
imports this module (its classes are named in the hub's config).
"""

from __future__ import annotations

import grp
import os
import pwd

import ldap3
from jupyterhub.auth import PAMAuthenticator
from ldap3.utils.conv import escape_filter_chars
from ldapauthenticator import LDAPAuthenticator
from oauthenticator.gitlab import GitLabOAuthenticator
from traitlets import Set, Unicode

GROUPS_KEY = "binderlite_groups"  # where the LDAP groups travel from the search to the answer


def local_groups(username: str) -> list[str]:
    """The names of the local groups ``username`` belongs to (primary group included)."""
    account = pwd.getpwnam(username)
    names = []
    for gid in os.getgrouplist(username, account.pw_gid):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:  # a gid without a name
            continue
    return sorted(set(names))


class BinderlitePAMAuthenticator(PAMAuthenticator):
    """PAM (this machine's accounts); the account's local groups become hub groups."""

    async def authenticate(self, handler, data):  # JupyterHub's signature
        name = await super().authenticate(handler, data)
        if not name:
            return None
        name = name if isinstance(name, str) else name["name"]
        return {"name": name, "groups": local_groups(name)}


class BinderliteLDAPAuthenticator(LDAPAuthenticator):
    """LDAP; the directory's groups the user is a member of become hub groups, named by their cn."""

    group_search_base = Unicode("", config=True, help="Where the groups are; empty: no groups.")
    allowed_group_names = Set(config=True, help="Group names (cn) whose members may sign in; empty: anyone.")

    def get_user_attributes(self, conn, userdn):  # called once bound as the user
        attributes = dict(super().get_user_attributes(conn, userdn))
        attributes[GROUPS_KEY] = self._groups_of(conn, userdn)
        return attributes

    def _groups_of(self, conn: ldap3.Connection, userdn: str) -> list[str]:
        if not self.group_search_base:
            return []
        uid, attribute = "", self.user_attribute or "uid"
        if conn.search(userdn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[attribute]):
            values = conn.entries[0].entry_attributes_as_dict.get(attribute) or [""]
            uid = str(values[0])
        member = escape_filter_chars(userdn)
        search = f"(|(member={member})(uniqueMember={member})(memberUid={escape_filter_chars(uid)}))"
        conn.search(self.group_search_base, search, search_scope=ldap3.SUBTREE, attributes=["cn"])
        return sorted({str(cn) for entry in conn.entries for cn in entry.entry_attributes_as_dict.get("cn", [])})

    async def authenticate(self, handler, data):  # JupyterHub's signature
        model = await super().authenticate(handler, data)
        if model:
            attributes = (model.get("auth_state") or {}).get("user_attributes") or {}
            model["groups"] = attributes.pop(GROUPS_KEY, [])
        return model

    async def check_allowed(self, username, auth_model):
        if username in self.admin_users:
            return True
        if self.allowed_group_names:
            return bool(self.allowed_group_names & set((auth_model or {}).get("groups") or []))
        return await super().check_allowed(username, auth_model)


class BinderliteGitLabOAuthenticator(GitLabOAuthenticator):
    """GitLab; the groups the user is a member of (full paths, e.g. ``physics/teaching``) become hub groups."""

    async def get_user_groups(self, auth_state: dict) -> set[str]:
        groups = await self.httpfetch(
            f"{self.gitlab_api}/groups?min_access_level=10&per_page=100",
            "fetching the user's GitLab groups",
            method="GET",
            headers={"Authorization": f"Bearer {auth_state['access_token']}", "Accept": "application/json"},
            validate_cert=self.validate_server_cert,
        )
        return {g["full_path"] for g in groups or []}
