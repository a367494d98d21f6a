"""When to try a failed Defender call again, and how long to wait first.

Kept as one small object so the rules are stated once and tested without waiting: throttling
(429) is retried no sooner than the service's ``Retry-After`` (retrying earlier keeps a client
throttled longer), transient server and network failures back off exponentially with jitter, and
everything else fails at once. The policy only computes delays; the caller sleeps, and checks
each delay against its own deadline first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mde_file_alerts.errors import MdeError, ServerError, Throttled, TransportError

# 501 (not implemented) and 505 (version not supported) will answer the same way every time.
RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first call; delays are seconds."""

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    #: The source of jitter; tests pass ``random.Random(seed)`` so delays are reproducible.
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("retry delays must not be negative")

    def delay_before_retry(self, attempt: int, error: MdeError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        ``attempt`` is the number of attempts already made (1 after the first failure). A 429 whose
        ``Retry-After`` is longer than ``max_retry_after`` is given up on rather than retried early.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts the attempts already made and starts at 1, not {attempt}")
        if attempt >= self.max_attempts or not self.is_retryable(error):
            return None
        if isinstance(error, Throttled) and error.retry_after is not None and error.retry_after > 0:
            if error.retry_after > self.max_retry_after:
                return None
            return error.retry_after
        return self.jitter(self.backoff(attempt))

    @staticmethod
    def is_retryable(error: MdeError) -> bool:
        """429, 500/502/503/504 and network failures; never 400, 401, 403 or 404.

        A 401 is not retried here because only a new token can fix it, which the client does itself.
        """
        if isinstance(error, ServerError):
            return error.status is None or error.status in RETRYABLE_SERVER_STATUSES
        return isinstance(error, (Throttled, TransportError))

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff before jitter: base, 2 * base, 4 * base ... up to ``max_delay``."""
        # Cap the exponent too: 2 ** 1100 overflows a float long before any sane max_attempts.
        return float(min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 64)))

    def jitter(self, delay: float) -> float:
        """Equal jitter: a uniformly random point in ``[delay / 2, delay]``.

        Chosen over full jitter (``[0, delay]``) because the failures retried here are an overloaded
        or unreachable service: half the backoff is always kept, so a retry never comes right back,
        while the random half still spreads the pool's threads and other processes apart.
        """
        half = delay / 2
        return half + self.rng.uniform(0.0, half)
