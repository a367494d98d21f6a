"""The cache interface: which outcomes are kept, how long each status stays fresh, NoCache, MemoryCache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.cache import (
    DEFAULT_TTL_FOUND,
    DEFAULT_TTL_NOT_FOUND,
    MAX_CLOCK_SKEW,
    CachedResult,
    CacheTtl,
    CacheUnavailable,
    MemoryCache,
    NoCache,
    ResultCache,
    cacheable,
)
from mde_file_alerts.errors import BudgetExhausted, MdeError, Throttled
from mde_file_alerts.hashes import parse_hash
from mde_file_alerts.outcome import HashOutcome, HashStatus
from tests.support.fake_clock import FakeClock

ALERT_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "alerts" / "demo-process-injection-high.json"
SHA1_FOUND = "0a" * 20
SHA1_CLEAN = "1b" * 20
SHA1_OTHER = "2c" * 20


def an_alert() -> dict[str, Any]:
    alert: dict[str, Any] = json.loads(ALERT_FILE.read_text(encoding="utf-8"))
    return alert


def outcome(sha1: str, status: HashStatus, **fields: Any) -> HashOutcome:
    return HashOutcome(query=parse_hash(sha1), status=status, sha1=sha1, **fields)


def found(
    sha1: str = SHA1_FOUND, correlation_id: str | None = "c0ffee00-0000-4000-8000-000000000001"
) -> HashOutcome:
    return outcome(sha1, HashStatus.FOUND, alerts=[an_alert()], correlation_id=correlation_id)


def not_found(sha1: str = SHA1_CLEAN) -> HashOutcome:
    return outcome(sha1, HashStatus.NOT_FOUND)


def test_the_default_ttls_are_an_hour_for_alerts_and_15_minutes_for_no_alerts() -> None:
    assert (DEFAULT_TTL_FOUND, DEFAULT_TTL_NOT_FOUND) == (3600.0, 900.0)
    assert CacheTtl() == CacheTtl(3600.0, 900.0)


@pytest.mark.parametrize("ttls", [(-1.0, 900.0), (3600.0, -0.5), (float("nan"), 900.0)])
def test_a_negative_or_nan_ttl_is_refused(ttls: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="must be 0 or more seconds"):
        CacheTtl(*ttls)


def test_an_entry_is_fresh_from_its_fetch_until_its_statuses_ttl() -> None:
    ttl = CacheTtl(found=100.0, not_found=10.0)

    assert ttl.is_fresh(HashStatus.FOUND, fetched_at=1000.0, now=1099.9)
    assert not ttl.is_fresh(HashStatus.FOUND, fetched_at=1000.0, now=1100.0)
    assert ttl.is_fresh(HashStatus.NOT_FOUND, fetched_at=1000.0, now=1009.9)
    assert not ttl.is_fresh(HashStatus.NOT_FOUND, fetched_at=1000.0, now=1010.0)
    assert not ttl.is_fresh(HashStatus.ERROR, fetched_at=1000.0, now=1000.0)


def test_an_entry_from_a_clock_slightly_ahead_is_fresh_one_far_in_the_future_is_not() -> None:
    ttl = CacheTtl()

    assert ttl.is_fresh(HashStatus.FOUND, fetched_at=1000.0 + MAX_CLOCK_SKEW, now=1000.0)
    assert not ttl.is_fresh(HashStatus.FOUND, fetched_at=1000.0 + MAX_CLOCK_SKEW + 1, now=1000.0)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (HashStatus.ERROR, MdeError()),
        (HashStatus.THROTTLED, Throttled(retry_after=30.0)),
        (HashStatus.NOT_LOOKED_UP, BudgetExhausted()),
        (HashStatus.INVALID_HASH, None),
    ],
)
def test_only_found_and_not_found_outcomes_are_cacheable(status: HashStatus, error: MdeError | None) -> None:
    assert cacheable(found(), CacheTtl())
    assert cacheable(not_found(), CacheTtl())
    assert not cacheable(outcome(SHA1_OTHER, status, error=error), CacheTtl())


def test_an_outcome_without_a_sha1_is_not_cacheable() -> None:
    """A SHA-256 Defender does not know never resolved to a SHA-1: there is nothing to key it by."""
    unresolved = HashOutcome(query=parse_hash("e" * 64), status=HashStatus.NOT_FOUND, sha256="e" * 64)

    assert not cacheable(unresolved, CacheTtl())


def test_a_zero_ttl_turns_caching_of_that_status_off() -> None:
    assert not cacheable(not_found(), CacheTtl(found=3600.0, not_found=0.0))
    assert cacheable(found(), CacheTtl(found=3600.0, not_found=0.0))


def test_no_cache_never_hits_and_keeps_nothing() -> None:
    cache: ResultCache = NoCache()
    cache.put_many([found(), not_found()])

    assert cache.get_many([SHA1_FOUND, SHA1_CLEAN]) == {}


def test_memory_cache_returns_what_was_put_with_its_alerts_and_fetch_time() -> None:
    clock = FakeClock()
    cache: ResultCache = MemoryCache(clock=clock)
    cache.put_many([found(), not_found()])

    hits = cache.get_many([SHA1_FOUND, SHA1_CLEAN, SHA1_OTHER])

    assert hits == {
        SHA1_FOUND: CachedResult(
            sha1=SHA1_FOUND,
            status=HashStatus.FOUND,
            alerts=[an_alert()],
            fetched_at=clock.time(),
            correlation_id="c0ffee00-0000-4000-8000-000000000001",
        ),
        SHA1_CLEAN: CachedResult(SHA1_CLEAN, HashStatus.NOT_FOUND, [], clock.time(), None),
    }


def test_memory_cache_expires_found_and_not_found_by_their_own_ttls() -> None:
    clock = FakeClock()
    cache = MemoryCache(ttl_found=600.0, ttl_not_found=60.0, clock=clock)
    cache.put_many([found(), not_found()])

    clock.advance(59.0)
    assert set(cache.get_many([SHA1_FOUND, SHA1_CLEAN])) == {SHA1_FOUND, SHA1_CLEAN}
    clock.advance(1.0)
    assert set(cache.get_many([SHA1_FOUND, SHA1_CLEAN])) == {SHA1_FOUND}
    clock.advance(540.0)
    assert cache.get_many([SHA1_FOUND, SHA1_CLEAN]) == {}


def test_memory_cache_ignores_outcomes_that_must_be_looked_up_again() -> None:
    cache = MemoryCache(clock=FakeClock())
    cache.put_many(
        [
            outcome(SHA1_FOUND, HashStatus.THROTTLED, error=Throttled(retry_after=30.0)),
            outcome(SHA1_CLEAN, HashStatus.NOT_LOOKED_UP, error=BudgetExhausted()),
            outcome(SHA1_OTHER, HashStatus.ERROR, error=MdeError()),
        ]
    )

    assert len(cache) == 0
    assert cache.get_many([SHA1_FOUND, SHA1_CLEAN, SHA1_OTHER]) == {}


def test_a_newer_result_replaces_the_older_one_and_restarts_its_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(ttl_found=600.0, ttl_not_found=60.0, clock=clock)
    cache.put_many([not_found(SHA1_FOUND)])
    clock.advance(50.0)

    cache.put_many([found(SHA1_FOUND)])
    clock.advance(500.0)

    hit = cache.get_many([SHA1_FOUND])[SHA1_FOUND]
    assert hit.status is HashStatus.FOUND
    assert hit.fetched_at == clock.time() - 500.0


def test_hits_are_keyed_by_the_values_as_asked_whatever_their_case() -> None:
    cache = MemoryCache(clock=FakeClock())
    cache.put_many([found(SHA1_FOUND.upper())])

    assert set(cache.get_many([SHA1_FOUND.upper(), SHA1_FOUND])) == {SHA1_FOUND.upper(), SHA1_FOUND}


def test_cache_unavailable_is_an_app_error_with_a_default_sentence() -> None:
    error = CacheUnavailable()

    assert isinstance(error, MdeError)
    assert error.user_message == "The result cache is not available; every hash is looked up in Defender."
