"""Many callers at once: concurrent builds and launches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_at_once(call: Callable[[], T], count: int, timeout: float) -> list[T | Exception]:
    """Run ``call`` in ``count`` threads started together; what each returned or raised, in finishing order.

    Waits up to ``timeout`` s for each thread; a thread still running then is missing from the list.
    """
    outcomes: list[T | Exception] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            outcome: T | Exception = call()
        except Exception as exc:  # the caller decides whether a failure is a data point or a test failure
            outcome = exc
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    with lock:
        return list(outcomes)
