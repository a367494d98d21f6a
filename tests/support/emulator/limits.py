"""Defender's rate limits: sliding windows of calls per (tenant, client id)."""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Hashable, Sequence
from typing import Protocol

# 100 calls per minute and 1,500 per hour, per application and tenant.
DEFENDER_RATE_LIMITS: tuple[tuple[int, float], ...] = ((100, 60.0), (1500, 3600.0))


class WallClock(Protocol):
    def time(self) -> float: ...


class SlidingWindowLimiter:
    """Admits a call when every window has room; otherwise says how long until one frees up.

    ``time_scale`` shrinks every window (0.01 turns the minute into 0.6 s) so tests on the real
    clock stay fast. Rejected calls are not counted unless ``count_rejected`` is set, which models
    "retrying sooner keeps you throttled longer".
    """

    def __init__(
        self,
        windows: Sequence[tuple[int, float]],
        *,
        clock: WallClock,
        time_scale: float = 1.0,
        count_rejected: bool = False,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self._windows = [(limit, length * time_scale) for limit, length in windows]
        self._longest = max((length for _, length in self._windows), default=0.0)
        self._clock = clock
        self._count_rejected = count_rejected
        self._lock = threading.Lock()
        self._calls: defaultdict[Hashable, deque[float]] = defaultdict(deque)

    def admit(self, key: Hashable) -> float | None:
        """``None`` when the call is admitted (and recorded); else the seconds to wait (> 0)."""
        with self._lock:
            now = self._clock.time()
            calls = self._calls[key]
            while calls and calls[0] <= now - self._longest:
                calls.popleft()
            wait = 0.0
            for limit, length in self._windows:
                in_window = [stamp for stamp in calls if stamp > now - length]
                if len(in_window) >= limit:
                    # The window has room again once enough of its oldest calls have aged out.
                    freeing_call = in_window[len(in_window) - limit]
                    wait = max(wait, freeing_call + length - now)
            if wait <= 0 or self._count_rejected:
                calls.append(now)
            return None if wait <= 0 else wait

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()


def retry_after_header(wait: float) -> str:
    """Whole seconds, rounded up so a client that honours it is never early, and at least 1."""
    return str(max(1, math.ceil(wait)))
