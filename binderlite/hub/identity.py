"""Who is asking: a user signed in through the hub (authenticated mode)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SignedInUser:
    """A hub user as the web app sees them after sign-in.

    ``forge`` names the git forge the user signed in through (``"gitlab"``, ``"github"``,
    ``"oidc"`` for a generic provider), and ``forge_token`` is the user's own access token
    there, read from the hub's encrypted auth state: it is never logged, stored or shown.
    """

    name: str
    groups: frozenset[str] = frozenset()
    admin: bool = False
    forge: str | None = None
    forge_token: str | None = field(default=None, repr=False)
