"""Access rules: loaded and checked at start, matched on the spec, groups and the forge's word decide."""

from __future__ import annotations

import json

import pytest

from binderlite.access import forge, rules
from binderlite.errors import ConfigError
from binderlite.hub.identity import SignedInUser
from binderlite.settings import Settings, load_settings

PHYSICS = {
    "name": "physics-teaching",
    "pattern": r"^git/https%3A%2F%2Fgit\.dept\.example%2Fphysics%2F.*",
    "groups": ["physics"],
    "max_servers": 20,
    "memory_limit": "2G",
    "cpu_limit": 1.0,
    "contact": "physics-it@dept.example",
}
SPEC = "git/https%3A%2F%2Fgit.dept.example%2Fphysics%2Fintro.git/HEAD"
ALICE = SignedInUser("alice", frozenset({"physics"}))
BOB = SignedInUser("bob", frozenset({"chemistry"}))


def settings_with(tmp_path, *table: dict, default: str = "allow") -> Settings:
    return Settings(state_dir=str(tmp_path), access_rules=json.dumps(list(table)), access_default=default)


def test_rules_load_from_the_config_file_as_a_toml_table_and_reach_child_processes(tmp_path):
    config = tmp_path / "binderlite.toml"
    config.write_text(
        'access_default = "deny"\n[[access_rules]]\nname = "physics-teaching"\n'
        "pattern = '^git/https%3A%2F%2Fgit\\.dept\\.example%2Fphysics%2F.*'\n"
        'groups = ["physics"]\nmax_servers = 20\nmemory_limit = "2G"\ncpu_limit = 1.0\n'
        'contact = "physics-it@dept.example"\n'
    )
    settings = load_settings(str(config), {})
    (rule,) = settings.access_rule_list
    assert (rule.name, rule.groups, rule.max_servers, rule.memory_limit, rule.contact) == (
        "physics-teaching",
        ("physics",),
        20,
        "2G",
        "physics-it@dept.example",
    )
    (tmp_path / "empty.toml").write_text("")
    child = load_settings(str(tmp_path / "empty.toml"), settings.to_environment())
    assert child.access_rule_list == settings.access_rule_list and child.access_default == "deny"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"pattern": "(unclosed"}, "('physics-teaching') has a pattern that is not a valid regular expression"),
        ({"groups": "physics"}, "('physics-teaching') has groups that are not a list"),
        ({"groups": [3]}, "('physics-teaching') has groups that are not a list"),
        ({"memory_limit": "lots"}, "('physics-teaching') has memory_limit that is not a size"),
        ({"max_servers": -1}, "('physics-teaching') has max_servers that is not a whole number"),
        ({"cpu_limit": "one"}, "('physics-teaching') has cpu_limit that is not a number"),
        ({"colour": "red"}, "('physics-teaching') has unknown keys colour"),
        ({"name": ""}, "needs a name"),
    ],
)
def test_a_malformed_rule_is_a_config_error_at_load_naming_it(tmp_path, change, words):
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(ConfigError) as err:
        load_settings(str(tmp_path / "empty.toml"), {"BINDERLITE_ACCESS_RULES": json.dumps([{**PHYSICS, **change}])})
    assert words in err.value.message


def test_two_rules_with_one_name_and_bad_json_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="has the name of an earlier rule"):
        settings_with(tmp_path, PHYSICS, PHYSICS)
    with pytest.raises(ConfigError, match="not valid JSON"):
        Settings(state_dir=str(tmp_path), access_rules="[{")


def test_a_member_of_the_rules_group_may_launch_and_gets_its_limits(tmp_path):
    decision = rules.check_launch(settings_with(tmp_path, PHYSICS), ALICE, SPEC, None)
    assert decision.allowed and decision.rule_name == "physics-teaching"


def test_someone_in_no_allowed_group_is_refused_with_the_rule_and_whom_to_ask(tmp_path):
    decision = rules.check_launch(settings_with(tmp_path, PHYSICS), BOB, SPEC, None)
    assert not decision.allowed and decision.status == 403
    assert "access rule 'physics-teaching'" in decision.message and "members of physics" in decision.message
    assert decision.contact == "physics-it@dept.example" and "physics-it@dept.example" in decision.message


def test_the_pattern_also_matches_the_decoded_spec_and_ignores_case(tmp_path):
    rule = {**PHYSICS, "pattern": r"^git/https://git\.dept\.example/PHYSICS/"}
    assert not rules.check_launch(settings_with(tmp_path, rule), BOB, SPEC, None).allowed


def test_the_default_decides_for_specs_no_rule_matches(tmp_path):
    other = "gh/someone/else/HEAD"
    assert rules.check_launch(settings_with(tmp_path, PHYSICS), BOB, other, None).allowed
    denied = rules.check_launch(settings_with(tmp_path, PHYSICS, default="deny"), BOB, other, None)
    assert not denied.allowed and "matches no access rule" in denied.message and denied.rule is None
    assert "the administrators of this server" in denied.message


def test_a_rule_without_groups_lets_every_signed_in_user_launch(tmp_path):
    rule = {**PHYSICS, "groups": []}
    assert rules.check_launch(settings_with(tmp_path, rule, default="deny"), BOB, SPEC, None).allowed


def test_the_first_matching_rule_decides(tmp_path):
    everyone = {"name": "open-physics", "pattern": r"^git/.*physics", "groups": []}
    assert rules.check_launch(settings_with(tmp_path, everyone, PHYSICS), BOB, SPEC, None).allowed
    assert not rules.check_launch(settings_with(tmp_path, PHYSICS, everyone), BOB, SPEC, None).allowed


def test_the_forge_saying_no_refuses_even_what_a_rule_allows(tmp_path, monkeypatch):
    asked = []

    def user_can_read(settings, user, repo_url):
        asked.append((user.name, repo_url))
        return False

    monkeypatch.setattr(forge, "user_can_read", user_can_read)
    user = SignedInUser("alice", frozenset({"physics"}), forge="gitlab", forge_token="secret-token")
    decision = rules.check_launch(settings_with(tmp_path, PHYSICS), user, SPEC, "https://git.dept.example/p.git")
    assert (
        not decision.allowed
        and decision.status == 403
        and "cannot read https://git.dept.example/p.git" in (decision.message)
    )
    assert "secret-token" not in decision.message
    assert asked == [("alice", "https://git.dept.example/p.git")]
    assert rules.check_launch(settings_with(tmp_path, PHYSICS), user, SPEC, None).allowed  # not resolved yet
