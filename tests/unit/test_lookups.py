"""lookups.HashLookup: the cache answers first, Defender only for misses, signing in only when needed.

The Defender client is replaced by a fake here (this file tests the combination, not the client);
the protocol tests run the real thing against the emulator and the fake splunkd's KV store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pytest

from mde_file_alerts.account import Account
from mde_file_alerts.cache import CachedResult, CacheUnavailable, MemoryCache
from mde_file_alerts.client import DefenderClient
from mde_file_alerts.clock import Clock
from mde_file_alerts.errors import AuthenticationError, ServerError
from mde_file_alerts.hashes import HashInput
from mde_file_alerts.lookups import WRITE_BATCH, WRITE_BATCH_ALERTS, HashLookup
from mde_file_alerts.outcome import HashOutcome, HashStatus
from mde_file_alerts.ratelimit import UnlimitedRateLimiter
from mde_file_alerts.runtime import Connection
from tests.support.fake_clock import FakeClock

FOUND = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
NOT_FOUND = "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0"
FAILING = "0123456789abcdef0123456789abcdef01234567"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ALERT = {"id": "da1", "title": "Suspicious file", "severity": "High", "status": "New"}
ACCOUNT = Account.from_mapping(
    {
        "name": "prod",
        "tenant_id": "11111111-2222-3333-4444-555555555555",
        "client_id": "66666666-7777-8888-9999-000000000000",
    },
    source="test",
    credentials_required=False,
)


class FakeClient:
    """Answers like DefenderClient.lookup: found, not found, a failure, or a fatal error."""

    def __init__(self, fatal_at: str | None = None) -> None:
        self.asked: list[list[str]] = []
        self.fatal_at = fatal_at

    def lookup(
        self, hashes: Iterable[HashInput], *, timeout: float | None = None, resolve_sha256: bool = False
    ) -> Iterator[HashOutcome]:
        queries = list(hashes)
        self.asked.append([query.value for query in queries])
        for query in queries:
            if query.value == self.fatal_at:
                raise AuthenticationError("The client secret is wrong.", code="AADSTS7000215")
            if query.value == FAILING:
                yield HashOutcome(query, HashStatus.ERROR, error=ServerError(status=500), sha1=query.value)
            elif query.is_sha256:
                yield HashOutcome(query, HashStatus.FOUND, alerts=[ALERT], sha1=FOUND, sha256=query.value)
            elif query.value == FOUND:
                yield HashOutcome(query, HashStatus.FOUND, alerts=[ALERT], sha1=query.value, calls=1)
            else:
                yield HashOutcome(query, HashStatus.NOT_FOUND, sha1=query.value, calls=1)


class RecordingCache(MemoryCache):
    def __init__(self, clock: Clock, *, fail_get: bool = False, fail_put: bool = False) -> None:
        super().__init__(clock=clock)
        self.fail_get, self.fail_put = fail_get, fail_put
        self.gets: list[list[str]] = []
        self.puts: list[list[str]] = []

    def get_many(self, sha1s: Sequence[str]) -> dict[str, CachedResult]:
        self.gets.append(list(sha1s))
        if self.fail_get:
            raise CacheUnavailable("The result cache could not be read (KV store down).")
        return super().get_many(sha1s)

    def put_many(self, outcomes: Sequence[HashOutcome]) -> None:
        self.puts.append([outcome.query.value for outcome in outcomes])
        if self.fail_put:
            raise CacheUnavailable("The result cache could not be written (KV store down).")
        super().put_many(outcomes)


class Harness:
    def __init__(
        self, cache: RecordingCache, client: FakeClient, clock: FakeClock, use_cache: bool = True
    ) -> None:
        self.client = client
        self.cache = cache
        self.warnings: list[str] = []
        self.sign_ins = 0
        self.lookup = HashLookup(
            Connection(ACCOUNT, UnlimitedRateLimiter(), cache),
            use_cache=use_cache,
            clock=clock,
            warn=self.warnings.append,
            client_factory=self._client,
        )

    def _client(self, connection: Connection, clock: Clock) -> DefenderClient:
        self.sign_ins += 1
        return self.client  # type: ignore[return-value]  # duck-typed stand-in

    def run(self, *values: str, **options: Any) -> list[tuple[str, str, str]]:
        return [
            (result.outcome.query.value, result.outcome.status.value, result.cache)
            for result in self.lookup.lookup(values, **options)
        ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def harness(clock: FakeClock) -> Harness:
    return Harness(RecordingCache(clock), FakeClient(), clock)


def test_a_cold_lookup_asks_defender_and_keeps_only_answers_about_the_file(harness: Harness) -> None:
    results = harness.run(FOUND, MD5, NOT_FOUND, FAILING)

    assert results == [
        (FOUND, "found", "miss"),
        (MD5, "invalid_hash", "bypass"),
        (NOT_FOUND, "not_found", "miss"),
        (FAILING, "error", "miss"),
    ]
    assert harness.client.asked == [[FOUND, NOT_FOUND, FAILING]]
    assert set(harness.cache.get_many([FOUND, NOT_FOUND, FAILING])) == {FOUND, NOT_FOUND}


def test_a_warm_rerun_signs_in_never_and_asks_defender_nothing(clock: FakeClock) -> None:
    cache = RecordingCache(clock)
    Harness(cache, FakeClient(), clock).run(FOUND, NOT_FOUND)
    clock.advance(60)
    rerun = Harness(cache, FakeClient(), clock)

    results = list(rerun.lookup.lookup([FOUND, NOT_FOUND, FOUND.upper()]))

    assert [(r.outcome.query.value, r.outcome.status.value, r.cache) for r in results] == [
        (FOUND, "found", "hit"),
        (NOT_FOUND, "not_found", "hit"),
    ]
    assert rerun.sign_ins == 0 and rerun.client.asked == [] and not rerun.lookup.signed_in
    assert results[0].outcome.alerts == [ALERT] and results[0].outcome.sha1 == FOUND
    assert results[0].retrieved_at == clock.time() - 60, "a hit carries the time Defender answered"


def test_hits_and_misses_keep_the_input_order(harness: Harness, clock: FakeClock) -> None:
    harness.run(NOT_FOUND)
    assert harness.run(FOUND, NOT_FOUND, FAILING) == [
        (FOUND, "found", "miss"),
        (NOT_FOUND, "not_found", "hit"),
        (FAILING, "error", "miss"),
    ]
    assert harness.client.asked[-1] == [FOUND, FAILING]


def test_the_client_is_made_once_per_search(harness: Harness) -> None:
    harness.run(FOUND)
    harness.run(NOT_FOUND)
    assert harness.sign_ins == 1 and len(harness.client.asked) == 2


def test_cache_false_neither_reads_nor_writes_the_cache(clock: FakeClock) -> None:
    harness = Harness(RecordingCache(clock), FakeClient(), clock, use_cache=False)
    assert harness.run(FOUND, MD5) == [(FOUND, "found", "bypass"), (MD5, "invalid_hash", "bypass")]
    assert harness.cache.gets == [] and harness.cache.puts == []


def test_an_unreadable_cache_means_misses_and_one_warning(clock: FakeClock) -> None:
    harness = Harness(RecordingCache(clock, fail_get=True), FakeClient(), clock)

    first = harness.run(FOUND, NOT_FOUND)
    second = harness.run(FAILING)

    assert first == [(FOUND, "found", "miss"), (NOT_FOUND, "not_found", "miss")]
    assert second == [(FAILING, "error", "miss")]
    assert harness.warnings == ["The result cache could not be read (KV store down)."]
    assert len(harness.cache.gets) == 1 and harness.cache.puts == [], "not asked again after failing"


def test_an_unwritable_cache_still_answers_and_warns_once(clock: FakeClock) -> None:
    harness = Harness(RecordingCache(clock, fail_put=True), FakeClient(), clock)
    assert harness.run(FOUND, NOT_FOUND) == [(FOUND, "found", "miss"), (NOT_FOUND, "not_found", "miss")]
    harness.run(FAILING)
    assert len(harness.warnings) == 1 and "written" in harness.warnings[0]


def test_answers_are_written_in_batches(harness: Harness) -> None:
    values = [f"{index:040x}" for index in range(WRITE_BATCH * 2 + 5)]
    assert len(harness.run(*values)) == len(values)
    assert [len(batch) for batch in harness.cache.puts] == [WRITE_BATCH, WRITE_BATCH, 5]


def test_files_with_many_alerts_are_written_before_they_add_up(clock: FakeClock) -> None:
    class ManyAlerts(FakeClient):
        def lookup(self, hashes: Iterable[HashInput], **_options: Any) -> Iterator[HashOutcome]:
            for query in hashes:
                yield HashOutcome(query, HashStatus.FOUND, alerts=[ALERT] * 400, sha1=query.value)

    harness = Harness(RecordingCache(clock), ManyAlerts(), clock)
    values = [f"{index:040x}" for index in range(7)]
    assert len(harness.run(*values)) == 7
    per_batch = -(-WRITE_BATCH_ALERTS // 400)
    assert [len(batch) for batch in harness.cache.puts] == [per_batch, per_batch, 7 - 2 * per_batch]


def test_a_fatal_error_is_raised_and_what_was_answered_before_is_cached(clock: FakeClock) -> None:
    harness = Harness(RecordingCache(clock), FakeClient(fatal_at=FAILING), clock)
    seen = []
    with pytest.raises(AuthenticationError):
        for result in harness.lookup.lookup([FOUND, NOT_FOUND, FAILING, MD5]):
            seen.append(result.outcome.query.value)
    assert seen == [FOUND, NOT_FOUND]
    assert set(harness.cache.get_many([FOUND, NOT_FOUND])) == {FOUND, NOT_FOUND}


def test_a_sha256_is_looked_up_only_when_resolving_and_cached_under_its_sha1(harness: Harness) -> None:
    assert harness.run(SHA256) == [(SHA256, "invalid_hash", "bypass")]
    assert harness.client.asked == []
    assert harness.run(SHA256, resolve_sha256=True) == [(SHA256, "found", "miss")]
    assert harness.run(FOUND) == [(FOUND, "found", "hit")]
