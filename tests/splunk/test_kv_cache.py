"""The result cache in the KV store, through the fake splunkd: hits, misses, expiry by status, tenant
isolation, documents not in our format, an unavailable KV store, and the [cache] settings."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.cache import CachedResult, CacheUnavailable
from mde_file_alerts.errors import BudgetExhausted, MdeError, Throttled
from mde_file_alerts.hashes import parse_hash
from mde_file_alerts.outcome import HashOutcome, HashStatus
from mde_file_alerts.splunk.kv_cache import DOCUMENT_VERSION, KvResultCache, cache_key
from mde_file_alerts.splunk.kvstore import CACHE_COLLECTION, KvStoreCollection
from mde_file_alerts.splunk.settings import AppSettings
from tests.splunk.conftest import ANALYST, PLAIN_USER, USERS
from tests.support.conf import read_conf
from tests.support.fake_clock import FakeClock
from tests.support.splunkd import FakeSplunkd

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "tests" / "fixtures" / "alerts"
TENANT = "8F3C2A71-5D4E-4B6A-9C1F-2E7D8A9B0C13"
OTHER_TENANT = "11111111-2222-3333-4444-555555555555"
SHA1_FOUND = "3395856ce81f2b7382dee72602f798b642f14140"
SHA1_CLEAN = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA1_UNKNOWN = "0" * 40
CORRELATION = "5b2d1c3e-0000-4000-8000-00000000c0de"


@pytest.fixture
def splunkd() -> Iterator[FakeSplunkd]:
    with FakeSplunkd(users=USERS) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def collection(splunkd: FakeSplunkd, user: str = ANALYST) -> KvStoreCollection:
    return KvStoreCollection(splunkd.uri, splunkd.session_key_for(user), CACHE_COLLECTION)


def cache_for(
    splunkd: FakeSplunkd, clock: FakeClock, *, tenant: str = TENANT, cloud: str = "commercial", **ttls: float
) -> KvResultCache:
    return KvResultCache(collection(splunkd), tenant_id=tenant, cloud=cloud, clock=clock, **ttls)


def alerts() -> list[dict[str, Any]]:
    return [
        json.loads((ALERTS / name).read_text(encoding="utf-8"))
        for name in ("demo-process-injection-high.json", "jp-invoice-dropper-low.json")
    ]


def found(sha1: str = SHA1_FOUND) -> HashOutcome:
    return HashOutcome(
        query=parse_hash(sha1),
        status=HashStatus.FOUND,
        alerts=alerts(),
        sha1=sha1,
        correlation_id=CORRELATION,
    )


def not_found(sha1: str = SHA1_CLEAN) -> HashOutcome:
    return HashOutcome(query=parse_hash(sha1), status=HashStatus.NOT_FOUND, sha1=sha1)


# --- hits and misses ----------------------------------------------------------------------------


def test_what_was_put_comes_back_with_its_alerts_exactly(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    cache_for(splunkd, clock).put_many([found(), not_found()])
    clock.advance(30.0)

    hits = cache_for(splunkd, clock).get_many([SHA1_FOUND, SHA1_CLEAN, SHA1_UNKNOWN])

    fetched_at = clock.time() - 30.0
    assert hits == {
        SHA1_FOUND: CachedResult(SHA1_FOUND, HashStatus.FOUND, alerts(), fetched_at, CORRELATION),
        SHA1_CLEAN: CachedResult(SHA1_CLEAN, HashStatus.NOT_FOUND, [], fetched_at, None),
    }


def test_the_stored_document_is_what_collections_conf_and_the_maintenance_search_expect(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    cache_for(splunkd, clock, ttl_found=600.0).put_many([found()])

    (document,) = splunkd.kv_documents(CACHE_COLLECTION)
    assert document == {
        "_key": cache_key(TENANT, "commercial", SHA1_FOUND),
        "_user": "nobody",
        "tenant_id": TENANT.lower(),
        "cloud": "commercial",
        "sha1": SHA1_FOUND,
        "status": "found",
        "alert_count": 2,
        "alerts_json": json.dumps(alerts(), separators=(",", ":"), ensure_ascii=False),
        "fetched_at": clock.time(),
        "expires_at": clock.time() + 600.0,
        "correlation_id": CORRELATION,
        "version": DOCUMENT_VERSION,
    }
    declared = {
        key[len("field.") :] for key in read_conf(ROOT / "default" / "collections.conf")[CACHE_COLLECTION]
    }
    assert set(document) - {"_key", "_user"} <= declared


def test_the_key_is_a_digest_of_tenant_cloud_and_sha1_whatever_their_case() -> None:
    key = cache_key(TENANT, "commercial", SHA1_FOUND)

    assert len(key) == 64 and TENANT.lower() not in key
    assert key == cache_key(f" {TENANT.lower()} ", "Commercial", SHA1_FOUND.upper())
    assert key != cache_key(TENANT, "gcc_high", SHA1_FOUND)
    assert key != cache_key(OTHER_TENANT, "commercial", SHA1_FOUND)


def test_a_hit_is_reported_for_every_spelling_it_was_asked_for(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    cache = cache_for(splunkd, clock)
    cache.put_many([found()])

    assert set(cache.get_many([SHA1_FOUND, SHA1_FOUND.upper()])) == {SHA1_FOUND, SHA1_FOUND.upper()}


def test_only_found_and_not_found_are_written(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    unresolved = HashOutcome(query=parse_hash("e" * 64), status=HashStatus.NOT_FOUND, sha256="e" * 64)
    cache_for(splunkd, clock).put_many(
        [
            HashOutcome(
                parse_hash("1" * 40), HashStatus.THROTTLED, error=Throttled(retry_after=5.0), sha1="1" * 40
            ),
            HashOutcome(
                parse_hash("2" * 40), HashStatus.NOT_LOOKED_UP, error=BudgetExhausted(), sha1="2" * 40
            ),
            HashOutcome(parse_hash("3" * 40), HashStatus.ERROR, error=MdeError(), sha1="3" * 40),
            unresolved,
        ]
    )

    assert splunkd.kv_documents(CACHE_COLLECTION) == []
    assert splunkd.requests == [], "nothing to store means no request at all"


def test_thousands_of_hashes_are_read_and_written_in_a_few_requests(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    cache = cache_for(splunkd, clock)
    hashes = [f"{number:040x}" for number in range(2500)]

    cache.put_many([not_found(sha1) for sha1 in hashes])
    written = len(splunkd.requests)
    hits = cache.get_many(hashes)

    assert len(hits) == 2500
    assert written == 3, "batch_save takes at most 1,000 documents a request"
    assert len(splunkd.requests) - written <= 40


# --- expiry -------------------------------------------------------------------------------------


def test_alerts_and_no_alerts_expire_by_their_own_ttls(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    cache = cache_for(splunkd, clock, ttl_found=3600.0, ttl_not_found=900.0)
    cache.put_many([found(), not_found()])

    clock.advance(899.0)
    assert set(cache.get_many([SHA1_FOUND, SHA1_CLEAN])) == {SHA1_FOUND, SHA1_CLEAN}
    clock.advance(1.0)
    assert set(cache.get_many([SHA1_FOUND, SHA1_CLEAN])) == {SHA1_FOUND}
    clock.advance(2700.0)
    assert cache.get_many([SHA1_FOUND, SHA1_CLEAN]) == {}


def test_the_ttls_in_force_when_reading_decide(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    cache_for(splunkd, clock, ttl_found=3600.0).put_many([found()])
    clock.advance(120.0)

    assert cache_for(splunkd, clock, ttl_found=60.0).get_many([SHA1_FOUND]) == {}
    assert set(cache_for(splunkd, clock, ttl_found=7200.0).get_many([SHA1_FOUND])) == {SHA1_FOUND}


def test_a_zero_ttl_keeps_no_such_results(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    cache = cache_for(splunkd, clock, ttl_not_found=0.0)
    cache.put_many([found(), not_found()])

    assert [document["sha1"] for document in splunkd.kv_documents(CACHE_COLLECTION)] == [SHA1_FOUND]


def test_a_newer_result_replaces_the_older_document(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    cache = cache_for(splunkd, clock)
    cache.put_many([not_found(SHA1_FOUND)])
    clock.advance(60.0)

    cache.put_many([found(SHA1_FOUND)])

    assert len(splunkd.kv_documents(CACHE_COLLECTION)) == 1
    assert cache.get_many([SHA1_FOUND])[SHA1_FOUND].status is HashStatus.FOUND


# --- isolation ----------------------------------------------------------------------------------


def test_a_tenant_never_sees_another_tenants_or_another_clouds_results(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    cache_for(splunkd, clock).put_many([found(), not_found()])

    assert cache_for(splunkd, clock, tenant=OTHER_TENANT).get_many([SHA1_FOUND, SHA1_CLEAN]) == {}
    assert cache_for(splunkd, clock, cloud="gcc_high").get_many([SHA1_FOUND, SHA1_CLEAN]) == {}


def test_a_document_copied_under_another_tenants_key_is_not_believed(
    splunkd: FakeSplunkd, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone with write access copies tenant A's document under tenant B's key: B gets a miss."""
    cache_for(splunkd, clock).put_many([found()])
    (document,) = splunkd.kv_documents(CACHE_COLLECTION)
    forged = {**document, "_key": cache_key(OTHER_TENANT, "commercial", SHA1_FOUND)}
    forged.pop("_user")
    collection(splunkd).insert(forged)

    with caplog.at_level(logging.WARNING, logger="mde_file_alerts.splunk.kv_cache"):
        hits = cache_for(splunkd, clock, tenant=OTHER_TENANT).get_many([SHA1_FOUND])

    assert hits == {}
    assert (
        "1 cached result(s) in the KV store collection mde_file_alerts_cache are not in this app's format"
        in (caplog.text)
    )


# --- documents not in our format ----------------------------------------------------------------


def good_document(sha1: str = SHA1_FOUND, **changes: Any) -> dict[str, Any]:
    document = {
        "_key": cache_key(TENANT, "commercial", sha1),
        "tenant_id": TENANT.lower(),
        "cloud": "commercial",
        "sha1": sha1,
        "status": "found",
        "alert_count": 1,
        "alerts_json": json.dumps(alerts()[:1]),
        "fetched_at": FakeClock().time(),
        "expires_at": FakeClock().time() + 3600.0,
        "version": DOCUMENT_VERSION,
    }
    document.update(changes)
    return {key: value for key, value in document.items() if value is not None}


@pytest.mark.parametrize(
    "changes",
    [
        {"alerts_json": "{not json"},
        {"alerts_json": '{"value": []}'},
        {"alerts_json": "[1, 2]"},
        {"alerts_json": None},
        {"alerts_json": "[]"},
        {"status": "not_found"},
        {"status": "throttled"},
        {"status": None},
        {"fetched_at": "yesterday"},
        {"fetched_at": None},
        {"version": 2},
        {"sha1": SHA1_CLEAN},
    ],
)
def test_a_document_not_in_this_apps_format_is_a_miss_never_an_error(
    splunkd: FakeSplunkd, clock: FakeClock, changes: dict[str, Any]
) -> None:
    collection(splunkd).batch_save(
        [good_document(**changes), good_document(SHA1_CLEAN, status="not_found", alerts_json="[]")]
    )

    hits = cache_for(splunkd, clock).get_many([SHA1_FOUND, SHA1_CLEAN])

    assert set(hits) == {SHA1_CLEAN}


def test_the_well_formed_document_of_those_tests_is_a_hit(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    collection(splunkd).batch_save([good_document()])

    assert cache_for(splunkd, clock).get_many([SHA1_FOUND])[SHA1_FOUND].alerts == alerts()[:1]


# --- when the KV store cannot be used -----------------------------------------------------------


def test_an_unavailable_kv_store_raises_cache_unavailable_on_read_and_write(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    cache = cache_for(splunkd, clock)
    splunkd.kvstore_available = False

    with pytest.raises(CacheUnavailable) as reading:
        cache.get_many([SHA1_FOUND])
    with pytest.raises(CacheUnavailable) as writing:
        cache.put_many([found()])

    assert reading.value.status == writing.value.status == 503
    assert reading.value.message == (
        "The result cache could not be read (The Splunk KV store is not available (it is starting, stopped "
        "or failed); the collection mde_file_alerts_cache cannot be used now); the hashes are looked up in "
        "Defender instead."
    )
    assert "could not be written" in writing.value.message


def test_a_user_without_access_to_the_collection_gets_cache_unavailable(
    splunkd: FakeSplunkd, clock: FakeClock
) -> None:
    cache = KvResultCache(collection(splunkd, PLAIN_USER), tenant_id=TENANT, cloud="commercial", clock=clock)

    with pytest.raises(CacheUnavailable) as raised:
        cache.get_many([SHA1_FOUND])

    assert raised.value.status == 403


def test_asking_for_nothing_asks_nobody(splunkd: FakeSplunkd, clock: FakeClock) -> None:
    splunkd.kvstore_available = False

    assert cache_for(splunkd, clock).get_many([]) == {}
    cache_for(splunkd, clock).put_many([])


# --- the [cache] settings -----------------------------------------------------------------------


def test_the_shipped_cache_settings_are_the_defaults() -> None:
    shipped = read_conf(ROOT / "default" / "ta_mde_file_alerts_settings.conf")

    settings = AppSettings.from_stanzas(shipped)

    assert (settings.cache_enabled, settings.cache_ttl_found, settings.cache_ttl_not_found) == (
        True,
        3600.0,
        900.0,
    )
    assert settings == AppSettings()


def test_cache_settings_are_read() -> None:
    settings = AppSettings.from_stanzas(
        {"cache": {"enabled": "0", "ttl_found": "7200", "ttl_not_found": "0"}}
    )

    assert (settings.cache_enabled, settings.cache_ttl_found, settings.cache_ttl_not_found) == (
        False,
        7200.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("ttl_found", "-5"), ("ttl_found", "an hour"), ("ttl_not_found", "nan"), ("enabled", "maybe")],
)
def test_an_unusable_cache_setting_is_logged_and_its_default_used(
    key: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mde_file_alerts.splunk.settings"):
        settings = AppSettings.from_stanzas({"cache": {key: value}})

    assert settings == AppSettings()
    assert f"ta_mde_file_alerts_settings.conf [cache] {key}={value!r} is not" in caplog.text
