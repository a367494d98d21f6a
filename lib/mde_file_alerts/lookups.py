"""The one place that combines the result cache with the Defender client.

A search asks for many hashes; the fresh answers the cache holds are used as they are, and only
the rest go to Defender. A cache hit costs no API call, no share of the call budget and no
token: the client (and with it the sign-in, which inside Splunk is a round trip to the app's
token broker) is created only when the first miss needs it, and then kept for the rest of the
search. Answers about the file itself (``found``, ``not_found``) are written back to the cache.

The cache is an optimisation, never a reason to fail: when it cannot be read or written, every
hash is looked up in Defender and the person searching is told once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union

from mde_file_alerts import cim
from mde_file_alerts.cache import CachedResult, CacheUnavailable
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import InvalidHash
from mde_file_alerts.hashes import HashInput, parse_hash
from mde_file_alerts.outcome import HashOutcome, HashStatus

if TYPE_CHECKING:
    from mde_file_alerts.client import DefenderClient
    from mde_file_alerts.runtime import Connection

logger = logging.getLogger(__name__)

HashValue = Union[str, HashInput]
#: Outcomes written to the cache in one request; a search of 10,000 hashes never holds them all...
WRITE_BATCH = 100
#: ... or sooner, once the outcomes waiting to be written hold this many alerts (memory stays flat).
WRITE_BATCH_ALERTS = 1_000
#: Hashes per cache read, and how many such reads run at once.
READ_PART = 250
READ_THREADS = 4


@dataclass(frozen=True)
class LookupResult:
    """One distinct hash's outcome, where it came from, and when Defender gave that answer."""

    outcome: HashOutcome
    #: ``cim.CACHE_HIT_VALUE``, ``CACHE_MISS_VALUE`` or ``CACHE_BYPASS_VALUE``.
    cache: str
    retrieved_at: float


class HashLookup:
    """Looks hashes up for one search: cache first, then Defender for the misses.

    ``warn`` receives the one sentence shown when the cache cannot be used. ``client_factory``
    builds the Defender client from the connection (tests and benchmarks pass their own).
    """

    def __init__(
        self,
        connection: Connection,
        *,
        use_cache: bool = True,
        clock: Clock | None = None,
        warn: Callable[[str], None] | None = None,
        client_factory: Callable[[Connection, Clock], DefenderClient] | None = None,
    ) -> None:
        self._connection = connection
        self._use_cache = use_cache
        self._clock = clock or SystemClock()
        self._warn = warn or (lambda _text: None)
        self._client_factory = client_factory or _client_for
        self._client: DefenderClient | None = None
        self._cache_failed = False

    @property
    def signed_in(self) -> bool:
        """Whether a miss has needed the Defender client (and so a token) yet."""
        return self._client is not None

    def lookup(
        self, values: Iterable[HashValue], *, timeout: float | None = None, resolve_sha256: bool = False
    ) -> Iterator[LookupResult]:
        """One result per distinct value, in input order, streamed while the misses are looked up.

        A fatal error (credentials, permissions) is raised from the iterator, as the client raises
        it; results already yielded stay valid and the misses answered so far are cached.
        """
        queries = _distinct(values)
        hits = self._cached([query.value for query in queries if query.is_sha1])
        misses = [
            query
            for query in queries
            if query.value not in hits and (query.is_sha1 or (resolve_sha256 and query.is_sha256))
        ]
        answers = self._defender(misses, timeout, resolve_sha256)
        pending: list[HashOutcome] = []
        try:
            for query in queries:
                cached = hits.get(query.value)
                if cached is not None:
                    yield LookupResult(_outcome_from(query, cached), cim.CACHE_HIT_VALUE, cached.fetched_at)
                elif query.is_sha1 or (resolve_sha256 and query.is_sha256):
                    outcome = next(answers)
                    if self._writes_cache:
                        pending.append(outcome)
                        if (
                            len(pending) >= WRITE_BATCH
                            or sum(len(o.alerts) for o in pending) >= WRITE_BATCH_ALERTS
                        ):
                            self._store(pending)
                            pending = []
                    yield LookupResult(outcome, self._miss_state, self._clock.time())
                else:
                    invalid = HashOutcome(query, HashStatus.INVALID_HASH, error=InvalidHash(query.problem))
                    yield LookupResult(invalid, cim.CACHE_BYPASS_VALUE, self._clock.time())
        finally:
            self._store(pending)

    # --- the cache ------------------------------------------------------------------------------

    @property
    def _writes_cache(self) -> bool:
        return self._use_cache and not self._cache_failed

    @property
    def _miss_state(self) -> str:
        return cim.CACHE_MISS_VALUE if self._use_cache else cim.CACHE_BYPASS_VALUE

    def _cached(self, sha1s: list[str]) -> dict[str, CachedResult]:
        if not self._use_cache or self._cache_failed or not sha1s:
            return {}
        # A big batch is read in parts at once: the cache answers each part with several short
        # requests, and waiting for them one after another would cost a warm rerun most of its time.
        parts = [sha1s[start : start + READ_PART] for start in range(0, len(sha1s), READ_PART)]
        try:
            if len(parts) == 1:
                return self._connection.cache.get_many(sha1s)
            found: dict[str, CachedResult] = {}
            with ThreadPoolExecutor(max_workers=min(len(parts), READ_THREADS)) as pool:
                for answer in pool.map(self._connection.cache.get_many, parts):
                    found.update(answer)
            return found
        except CacheUnavailable as error:
            self._cache_unusable(error)
            return {}

    def _store(self, outcomes: list[HashOutcome]) -> None:
        if not self._use_cache or self._cache_failed or not outcomes:
            return
        try:
            self._connection.cache.put_many(outcomes)
        except CacheUnavailable as error:
            self._cache_unusable(error)

    def _cache_unusable(self, error: CacheUnavailable) -> None:
        # Once is enough: the rest of this search neither asks the cache again nor repeats the warning.
        self._cache_failed = True
        logger.warning("result cache not used for the rest of this search: %s", error)
        self._warn(error.user_message)

    # --- Defender -------------------------------------------------------------------------------

    def _defender(
        self, misses: list[HashInput], timeout: float | None, resolve_sha256: bool
    ) -> Iterator[HashOutcome]:
        # A generator: the client signs in when the first miss is reached, after the hits before it.
        if self._client is None:
            self._client = self._client_factory(self._connection, self._clock)
        yield from self._client.lookup(misses, timeout=timeout, resolve_sha256=resolve_sha256)


def _client_for(connection: Connection, clock: Clock) -> DefenderClient:
    # Imported here: the HTTP stack (requests, msal) costs a search nothing when the cache answers.
    from mde_file_alerts.client import DefenderClient

    signed_in = connection.signed_in()
    return DefenderClient(
        signed_in.account,
        token_source=signed_in.token_source,
        rate_limiter=connection.rate_limiter,
        clock=clock,
    )


def _outcome_from(query: HashInput, cached: CachedResult) -> HashOutcome:
    return HashOutcome(
        query,
        cached.status,
        alerts=list(cached.alerts),
        sha1=cached.sha1,
        correlation_id=cached.correlation_id,
    )


def _distinct(values: Iterable[HashValue]) -> list[HashInput]:
    seen: dict[str, HashInput] = {}
    for value in values:
        query = value if isinstance(value, HashInput) else parse_hash(value)
        seen.setdefault(query.value, query)
    return list(seen.values())
