"""When ``binderlite up`` restarts a service that died, and when it gives up on one.

A pure rule, so it is tested without processes: the first restart waits
``FIRST_DELAY``, each further death within ``WINDOW`` doubles the wait up to
``MAX_DELAY``, and the ``GIVE_UP_AFTER``-th death within ``WINDOW`` means the
service cannot stay up (a broken config, a port taken, a full disk):
restarting it again would only hide that, so ``up`` stops everything and
says so. A service that stays up for ``WINDOW`` starts over at ``FIRST_DELAY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_DELAY = 1.0  # seconds before the first restart: most deaths are one-offs (an OOM kill, a stray kill -9)
MAX_DELAY = 30.0  # never wait longer than this: a classroom waits for the service
GIVE_UP_AFTER = 5  # deaths within WINDOW after which up gives up
WINDOW = 120.0  # seconds


@dataclass
class RestartPolicy:
    """The deaths of one service, and what to do about the next one."""

    first_delay: float = FIRST_DELAY
    max_delay: float = MAX_DELAY
    give_up_after: int = GIVE_UP_AFTER
    window: float = WINDOW
    deaths: list[float] = field(default_factory=list)

    def died(self, now: float) -> float | None:
        """Record a death at ``now`` (monotonic seconds); the seconds to wait before restarting, None to give up."""
        self.deaths = [t for t in self.deaths if now - t < self.window] + [now]
        if len(self.deaths) >= self.give_up_after:
            return None
        return min(self.first_delay * 2 ** (len(self.deaths) - 1), self.max_delay)

    def describe(self) -> str:
        """The give-up rule in words, for the message that ends ``up``."""
        return f"{len(self.deaths)} deaths within {self.window:.0f} s"
