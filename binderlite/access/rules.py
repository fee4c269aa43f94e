"""Access rules: which signed-in users may launch a link, and with which limits.

A rule's ``pattern`` is matched (case-insensitive, from the start, as
``banned_specs``) against ``<provider>/<spec>`` as given and percent-decoded;
the first rule that matches decides: its ``groups`` (empty: every signed-in
user) may launch, within its limits. A link no rule matches follows
``access_default``. Then, for a user who signed in through a git forge, the
forge itself is asked whether the user may read the repository
(``access.forge.user_can_read``): False refuses the launch even when a rule
allows it and the image exists.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from binderlite.access import forge
from binderlite.hub.identity import SignedInUser
from binderlite.settings import AccessRule, Settings

ADMINISTRATORS = "the administrators of this server"


@dataclass(frozen=True)
class Decision:
    """May the user launch it: ``allowed``, the rule that decided (None: the default), and why not."""

    allowed: bool
    rule: AccessRule | None = None
    message: str = ""
    status: int = 200

    @property
    def rule_name(self) -> str:
        return self.rule.name if self.rule else ""

    @property
    def contact(self) -> str:
        return (self.rule.contact if self.rule else "") or ADMINISTRATORS


def matching_rule(settings: Settings, spec: str) -> AccessRule | None:
    """The first rule whose pattern matches ``<provider>/<spec>`` (as given or percent-decoded)."""
    candidates = [spec, urllib.parse.unquote(spec)]
    for rule in settings.access_rule_list:
        if any(rule.pattern.match(text) for text in candidates):
            return rule
    return None


def _refused(rule: AccessRule | None, message: str, status: int = 403) -> Decision:
    contact = Decision(False, rule).contact
    return Decision(False, rule, f"{message} Ask {contact} if you need it.", status)


def check_launch(settings: Settings, user: SignedInUser, spec: str, repo_url: str | None) -> Decision:
    """May ``user`` launch ``spec`` (``<provider>/<spec>``) of ``repo_url``? Asked on every build and launch.

    ``repo_url`` None skips the forge's word (the link is not resolved yet); the
    build stream asks again once it is. An unreachable forge raises FetchError.
    """
    rule = matching_rule(settings, spec)
    if rule is None and settings.access_default == "deny":
        return _refused(
            None,
            f"Sorry, {spec} matches no access rule, and this server launches only what its rules allow "
            "(access_default = 'deny').",
        )
    if rule is not None and rule.groups and not user.groups & set(rule.groups):
        return _refused(
            rule,
            f"Sorry, {spec} may be launched only by members of {', '.join(rule.groups)} "
            f"(access rule '{rule.name}'), and {user.name} is not one.",
        )
    if repo_url and forge.user_can_read(settings, user, repo_url) is False:
        return _refused(
            rule,
            f"Sorry, your {user.forge} account ({user.name}) cannot read {repo_url}, so you cannot launch it.",
        )
    return Decision(True, rule)
