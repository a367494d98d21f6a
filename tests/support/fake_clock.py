"""A controllable Clock, so that tests about waiting (retries, rate limits, deadlines) never wait.

``sleep()`` moves time forward instantly and records how long it was asked to wait, which lets a
test assert both *that* code waited and *how long*. It is shared by the client's worker threads,
hence the lock.
"""

from __future__ import annotations

import threading

# A fixed, recent wall-clock origin (2023-11-14T22:13:20Z) keeps timestamps realistic in state files.
DEFAULT_START = 1_700_000_000.0


class FakeClock:
    """Implements ``mde_file_alerts.clock.Clock``; wall time and monotonic time advance together."""

    def __init__(self, start: float = DEFAULT_START, *, monotonic_start: float = 1_000.0) -> None:
        self._lock = threading.Lock()
        self._time = float(start)
        self._monotonic = float(monotonic_start)
        self._sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._time

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def sleep(self, seconds: float) -> None:
        # Like SystemClock, a non-positive sleep returns at once; it is still recorded so a test
        # can see that the code asked for it.
        with self._lock:
            self._sleeps.append(seconds)
            if seconds > 0:
                self._time += seconds
                self._monotonic += seconds

    def advance(self, seconds: float) -> None:
        """Let time pass without it counting as a sleep of the code under test."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, not by {seconds}")
        with self._lock:
            self._time += seconds
            self._monotonic += seconds

    @property
    def sleeps(self) -> list[float]:
        """Every ``sleep()`` call's length, in call order (a copy)."""
        with self._lock:
            return list(self._sleeps)

    @property
    def total_slept(self) -> float:
        with self._lock:
            return sum(self._sleeps)
