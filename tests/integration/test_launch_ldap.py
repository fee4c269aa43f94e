"""Launching under an access rule with people from a real directory (slapd), end to end in headless Chromium.

`binderlite up` runs with ``authenticator = "ldap"`` against slapd seeded with
two people in two groups, and one access rule: the "physics" group may launch
the physics repositories. Alice (physics) opens a physics link signed out,
signs in on the hub's form, comes back to the same link and lands in
JupyterLab. Bob (chemistry) opening the same link, its image built already,
gets the 403 page naming the rule and whom to ask; the build API with his
session answers 403 and starts nothing. A rule naming a group the directory
does not have is one line under `binderlite status`'s problems.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from binderlite import launch
from binderlite.hub.api import HubClient
from binderlite.settings import load_settings
from tests.helpers.browser import WEB, appliance_env, chromium, running_appliance
from tests.helpers.ldapserver import running_directory
from tests.helpers.signin import check_refused, launch_signed_out
from tests.helpers.stack import binderlite_cli

pytestmark = pytest.mark.integration
PEOPLE = {"alice": "alice-Pw-1", "bob": "bob-Pw-2"}
GROUPS = {"physics": ["alice"], "chemistry": ["bob"]}
REPO, RULE, CONTACT = "bltest-ldap-physics-lab", "physics-teaching", "physics-it@dept.example"
RULES = [{"name": RULE, "pattern": "^git/.*bltest-ldap-physics-", "groups": ["physics"], "contact": CONTACT}]


def ldap_extra(directory, rules: list[dict]) -> dict[str, str]:
    """The appliance's settings: sign-in against ``directory``, and ``rules``."""
    return {
        "BINDERLITE_AUTH_MODE": "authenticated",
        "BINDERLITE_AUTHENTICATOR": "ldap",
        "BINDERLITE_LDAP_URL": directory.url,
        "BINDERLITE_LDAP_STARTTLS": "false",  # a directory on this machine
        "BINDERLITE_LDAP_BIND_DN_TEMPLATE": directory.bind_dn_template,
        "BINDERLITE_LDAP_GROUP_SEARCH_BASE": directory.group_base,
        "BINDERLITE_ACCESS_RULES": json.dumps(rules),
    }


@pytest.fixture(scope="module")
def department(tmp_path_factory, git_server, docker_client):
    git_server.add_fixture("requirements", REPO)
    with running_directory(tmp_path_factory.mktemp("slapd"), PEOPLE, GROUPS) as directory:
        extra = ldap_extra(directory, RULES)
        with running_appliance(docker_client, extra) as up:
            settings = load_settings(environ=appliance_env(up["state"], extra))
            yield {"up": up, "hub": HubClient(settings), "directory": directory}


@pytest.fixture
def browsers():
    """Opens a fresh headless Chromium (no cookies) per call; all closed afterwards."""
    opened = []
    yield lambda: opened.append(chromium()) or opened[-1]
    for browser in opened:
        browser.quit()


def test_a_group_member_launches_and_a_non_member_gets_403_for_the_built_image(
    department, git_server, docker_client, browsers
):
    link = f"{WEB}/v2/{git_server.link(REPO)}?urlpath=lab"
    server = launch.server_name_for(git_server.url(REPO))
    launch_signed_out(browsers(), link, "alice", PEOPLE["alice"], server)
    alice = department["hub"].user("alice")
    assert alice["groups"] == ["physics"], "the directory's group is her hub group"
    options = alice["servers"][server]["user_options"]
    assert options["access_rule"] == RULE
    assert docker_client.images.get(options["image"]), "her launch built the image"

    builds = department["up"]["state"] / "builds"
    before = set(builds.glob("*"))
    check_refused(browsers(), git_server.link(REPO), "bob", PEOPLE["bob"], RULE, CONTACT)
    bob = department["hub"].user("bob")
    assert bob["groups"] == ["chemistry"] and bob["servers"] == {}
    assert set(builds.glob("*")) == before, "a build started for bob"
    assert not docker_client.containers.list(all=True, filters={"label": ["binderlite.user=bob"]})


def test_status_names_a_rule_whose_group_the_directory_does_not_have(department):
    rules = [*RULES, {"name": "astronomy-club", "pattern": "^gh/", "groups": ["astronomy"]}]
    env = appliance_env(department["up"]["state"], ldap_extra(department["directory"], rules))
    status = subprocess.run([*binderlite_cli(), "status"], env=env, capture_output=True, text=True, timeout=120)
    problem = "sign-in (ldap): Setting access_rules: rule 'astronomy-club' names group 'astronomy'; these groups "
    assert problem + "are not in the LDAP directory under ou=groups," in status.stdout, status.stdout + status.stderr
    assert "Traceback" not in status.stdout + status.stderr
