"""Time as a dependency, so that tests never sleep for real."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the client needs to know about time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (shared between processes)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards (deadlines, durations)."""

    def sleep(self, seconds: float) -> None:
        """Wait for ``seconds``."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Deadline:
    """An absolute point on a clock's monotonic scale; ``None`` seconds means no deadline."""

    def __init__(self, clock: Clock, seconds: float | None) -> None:
        self._clock = clock
        self._at = None if seconds is None else clock.monotonic() + seconds

    @property
    def is_unbounded(self) -> bool:
        return self._at is None

    def remaining(self) -> float:
        """Seconds left (``inf`` when unbounded, never negative)."""
        if self._at is None:
            return float("inf")
        return max(0.0, self._at - self._clock.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def allows(self, seconds: float) -> bool:
        """Whether waiting ``seconds`` still ends before the deadline."""
        return seconds <= self.remaining()
