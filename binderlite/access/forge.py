"""Asks the git forge a user signed in through whether that user may read a repository."""

from __future__ import annotations

from binderlite.hub.identity import SignedInUser
from binderlite.settings import Settings


def user_can_read(settings: Settings, user: SignedInUser, repo_url: str) -> bool | None:
    """True/False from the forge with the user's own token; None when the forge has no say.

    The forge has no say when the user did not sign in through a forge, or the
    repository is on another host. An unreachable forge raises FetchError.
    """
    return None
