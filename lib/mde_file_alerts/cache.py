"""Results of earlier lookups, so a hash looked up a moment ago costs no Defender call and no token.

Only the two answers about the file itself are kept: ``found`` (its alerts) and ``not_found`` (no
alerts). Each has its own time to live, because "no alerts yet" goes stale sooner than a list of
alerts does. Failures, throttling and hashes never looked up are never cached: the next search
must try them again.

A store answers with fresh entries only, so callers never reason about age. A store that cannot
be reached raises ``CacheUnavailable``; the caller then treats every hash as a miss.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import MdeError
from mde_file_alerts.outcome import HashOutcome, HashStatus

#: Seconds a list of alerts stays valid.
DEFAULT_TTL_FOUND = 3600.0
#: Seconds "no alerts for this file" stays valid; shorter, as a new alert can appear at any time.
DEFAULT_TTL_NOT_FOUND = 900.0

#: The only statuses a cache keeps.
CACHEABLE_STATUSES = (HashStatus.FOUND, HashStatus.NOT_FOUND)

# Entries written by another search head whose clock runs a little ahead are still fresh; an entry
# dated further into the future than this is not trusted at all.
MAX_CLOCK_SKEW = 300.0


class CacheUnavailable(MdeError):
    """The cache's store cannot be reached or used; every hash is then a miss."""

    default_message = "The result cache is not available; every hash is looked up in Defender."


@dataclass(frozen=True)
class CachedResult:
    """What an earlier lookup found for one SHA-1."""

    sha1: str
    #: ``FOUND`` or ``NOT_FOUND``, never anything else.
    status: HashStatus
    alerts: list[dict[str, Any]]
    #: When Defender answered, in epoch seconds.
    fetched_at: float
    correlation_id: str | None = None


class ResultCache(Protocol):
    def get_many(self, sha1s: Sequence[str]) -> dict[str, CachedResult]:
        """The fresh entries among ``sha1s``, keyed by the values as given; raises CacheUnavailable."""

    def put_many(self, outcomes: Sequence[HashOutcome]) -> None:
        """Keep the ``found``/``not_found`` outcomes that name a SHA-1; ignore the rest."""


@dataclass(frozen=True)
class CacheTtl:
    """How long each cacheable status stays fresh; 0 turns caching of that status off."""

    found: float = DEFAULT_TTL_FOUND
    not_found: float = DEFAULT_TTL_NOT_FOUND

    def __post_init__(self) -> None:
        for name, value in (("ttl_found", self.found), ("ttl_not_found", self.not_found)):
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be 0 or more seconds, not {value!r}")

    def for_status(self, status: HashStatus) -> float:
        """Seconds an entry with ``status`` stays fresh (0 for statuses that are never cached)."""
        if status is HashStatus.FOUND:
            return self.found
        if status is HashStatus.NOT_FOUND:
            return self.not_found
        return 0.0

    def is_fresh(self, status: HashStatus, fetched_at: float, now: float) -> bool:
        age = now - fetched_at
        return -MAX_CLOCK_SKEW <= age < self.for_status(status)


def cacheable(outcome: HashOutcome, ttl: CacheTtl) -> bool:
    """Whether ``outcome`` is an answer about a known SHA-1 that the TTLs allow keeping."""
    return outcome.status in CACHEABLE_STATUSES and bool(outcome.sha1) and ttl.for_status(outcome.status) > 0


class NoCache:
    """No caching at all (``cache=false``, or caching turned off in the app's settings)."""

    def get_many(self, sha1s: Sequence[str]) -> dict[str, CachedResult]:
        return {}

    def put_many(self, outcomes: Sequence[HashOutcome]) -> None:
        return None


class MemoryCache:
    """A cache for one account inside one process: the CLI and tests."""

    def __init__(
        self,
        ttl_found: float = DEFAULT_TTL_FOUND,
        ttl_not_found: float = DEFAULT_TTL_NOT_FOUND,
        clock: Clock | None = None,
    ) -> None:
        self.ttl = CacheTtl(ttl_found, ttl_not_found)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._entries: dict[str, CachedResult] = {}

    def get_many(self, sha1s: Sequence[str]) -> dict[str, CachedResult]:
        now = self._clock.time()
        found: dict[str, CachedResult] = {}
        with self._lock:
            for sha1 in sha1s:
                entry = self._entries.get(sha1.lower())
                if entry is not None and self.ttl.is_fresh(entry.status, entry.fetched_at, now):
                    found[sha1] = entry
        return found

    def put_many(self, outcomes: Sequence[HashOutcome]) -> None:
        now = self._clock.time()
        with self._lock:
            for outcome in outcomes:
                if outcome.sha1 and cacheable(outcome, self.ttl):
                    sha1 = outcome.sha1.lower()
                    self._entries[sha1] = CachedResult(
                        sha1=sha1,
                        status=outcome.status,
                        alerts=[dict(alert) for alert in outcome.alerts],
                        fetched_at=now,
                        correlation_id=outcome.correlation_id,
                    )

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
