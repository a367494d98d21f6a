"""``... | mdefilealerts field=<hash field>`` and the result cache, the command as splunkd runs it.

Events arrive in execute chunks as splunkd streams them (tests/support/chunked.py); the account,
the KV store (cache and call budget) and the token broker are the fake splunkd's, Defender is
the emulator. Commands run in virtual time, so nothing here really waits.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.conftest import ANALYST_ROLE, CommandHarness, CommandResult
from tests.support.emulator import DefenderEmulator
from tests.support.splunkd import FakeSplunkd, account_stanza_for

FIVE_ALERTS = "6532ec91d513acc05f43ee0aa3002599729fd3e1"  # 3 open, highest open severity high
TWO_ALERTS = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"  # 1 open (low), 1 resolved (high)
KNOWN_NO_ALERTS = "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0"
UNKNOWN = "0123456789abcdef0123456789abcdef01234567"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
CACHE = "mde_file_alerts_cache"
BROKER = "mde_file_alerts/token"
SUMMARY_FIELDS = ("mde_status", "mde_message", "mde_cache")


def event(number: int, value: Any, **fields: Any) -> dict[str, Any]:
    """An endpoint event as a base search hands it over, with the hash in ``sha1``."""
    return {
        "_time": str(1_700_000_000 + number),
        "_raw": f"event {number}",
        "host": f"ws-{number:04}",
        "sha1": value,
        **fields,
    }


def iso_epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def statuses(result: CommandResult) -> list[tuple[str, str, str]]:
    return [(record["_raw"], record["mde_status"], record["mde_cache"]) for record in result.records]


@pytest.fixture
def splunkd(emulator: DefenderEmulator) -> Iterator[FakeSplunkd]:
    with FakeSplunkd(
        users={"analyst": [ANALYST_ROLE], "intern": ["user"]},
        accounts={"prod": account_stanza_for(emulator)},
        passwords={"prod": emulator.client_secret},
    ) as fake:
        yield fake


@pytest.fixture
def in_splunk(tmp_path: Path, emulator: DefenderEmulator, splunkd: FakeSplunkd) -> CommandHarness:
    return CommandHarness(tmp_path, emulator, splunkd=splunkd)


# --- the command as splunkd sees it ------------------------------------------------------------------


def test_field_makes_it_a_streaming_command_that_stays_on_the_search_head(in_splunk: CommandHarness) -> None:
    result = in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1")

    result.assert_clean_exit()
    assert result.run.getinfo.get("generating", False) is False
    assert result.run.getinfo["type"] == "stateful"
    assert result.run.replies[-1].metadata["finished"] is True


def test_every_event_gets_summary_fields_and_each_hash_is_looked_up_once(in_splunk: CommandHarness) -> None:
    chunks = [
        [event(1, FIVE_ALERTS), event(2, TWO_ALERTS.upper()), event(3, KNOWN_NO_ALERTS)],
        [event(4, FIVE_ALERTS), event(5, f"SHA1={TWO_ALERTS},MD5={MD5}")],
        [event(6, FIVE_ALERTS), event(7, KNOWN_NO_ALERTS)],
    ]

    result = in_splunk.enrich(chunks, "field=sha1")

    result.assert_clean_exit()
    assert [r["_raw"] for r in result.records] == [f"event {n}" for n in range(1, 8)]
    assert [r["mde_status"] for r in result.records] == [
        *("found", "found", "not_found"),
        *("found", "found"),
        *("found", "not_found"),
    ]
    paths = Counter(request.path for request in in_splunk.emulator.api_requests)
    assert paths == {f"/api/files/{sha1}/alerts": 1 for sha1 in (FIVE_ALERTS, TWO_ALERTS, KNOWN_NO_ALERTS)}
    first = result.records[0]
    assert first["mde_alert_count"] == "5" and first["mde_open_alert_count"] == "3"
    assert first["mde_max_severity"] == "high" and first["mde_max_open_severity"] == "high"
    assert len(first["mde_alert_ids"]) == 5 and "T1055.001" in first["mde_mitre_technique_id"]
    assert first["mde_account"] == "prod" and first["mde_sha1"] == FIVE_ALERTS
    assert first["host"] == "ws-0001" and first["_time"] == "1700000001", "the event's own fields stay"
    two = result.records[1]
    assert two["mde_max_severity"] == "high" and two["mde_max_open_severity"] == "low"
    assert result.records[2]["mde_alert_count"] == "0" and "mde_alert_ids" not in result.records[2]
    assert result.warnings == [] and result.errors == []


def test_invalid_and_empty_values_mark_their_event_and_the_search_goes_on(in_splunk: CommandHarness) -> None:
    chunks = [
        [event(1, MD5), event(2, ""), event(3, FIVE_ALERTS)],
        [event(4, "not a hash{0}"), event(5, None)],
    ]

    result = in_splunk.enrich(chunks, "field=sha1")

    result.assert_clean_exit()
    assert [(r["_raw"], r["mde_status"]) for r in result.records] == [
        ("event 1", "invalid_hash"),
        ("event 2", "invalid_hash"),
        ("event 3", "found"),
        ("event 4", "invalid_hash"),
        ("event 5", "invalid_hash"),
    ]
    messages = [r["mde_message"] for r in result.records]
    assert "MD5" in messages[0] and "no value in field 'sha1'" in messages[1]
    assert "not hexadecimal" in messages[3]
    assert result.warnings == [
        "4 events have no usable SHA-1 in field 'sha1'; they are marked mde_status=invalid_hash, with the "
        "reason in mde_message."
    ]
    assert [r.path for r in in_splunk.emulator.api_requests] == [f"/api/files/{FIVE_ALERTS}/alerts"]


def test_expand_gives_one_row_per_alert_and_keeps_events_without_alerts(in_splunk: CommandHarness) -> None:
    chunks = [[event(1, TWO_ALERTS), event(2, KNOWN_NO_ALERTS)], [event(3, MD5), event(4, TWO_ALERTS)]]

    result = in_splunk.enrich(chunks, "field=sha1", "expand=true")

    result.assert_clean_exit()
    assert [r["_raw"] for r in result.records] == [
        "event 1",
        "event 1",
        "event 2",
        "event 3",
        "event 4",
        "event 4",
    ]
    alert_rows = [r for r in result.records if "id" in r]
    assert len(alert_rows) == 4
    for row in alert_rows:
        assert row["host"].startswith("ws-") and row["sourcetype"] if "sourcetype" in row else True
        assert row["file_hash"] == TWO_ALERTS and row["signature"] and row["severity"] in ("low", "high")
        assert row["mde_status"] in ("New", "Resolved"), "an alert row's mde_status is the alert's"
    assert result.records[2]["mde_status"] == "not_found" and "id" not in result.records[2]
    assert result.records[3]["mde_status"] == "invalid_hash"
    assert len(in_splunk.emulator.api_requests) == 2


# --- the result cache ---------------------------------------------------------------------------------


def test_a_warm_rerun_costs_no_defender_call_no_token_and_no_broker_request(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    chunks = [[event(1, FIVE_ALERTS), event(2, KNOWN_NO_ALERTS)], [event(3, UNKNOWN), event(4, MD5)]]
    cold = in_splunk.enrich(chunks, "field=sha1")
    calls, tokens, brokered = (
        len(in_splunk.emulator.api_requests),
        in_splunk.emulator.token_requests,
        len(splunkd.requests_to(BROKER)),
    )

    warm = in_splunk.enrich(chunks, "field=sha1")

    cold.assert_clean_exit()
    warm.assert_clean_exit()
    assert statuses(cold) == [
        ("event 1", "found", "miss"),
        ("event 2", "not_found", "miss"),
        ("event 3", "not_found", "miss"),
        ("event 4", "invalid_hash", "bypass"),
    ]
    assert statuses(warm) == [
        ("event 1", "found", "hit"),
        ("event 2", "not_found", "hit"),
        ("event 3", "not_found", "hit"),
        ("event 4", "invalid_hash", "bypass"),
    ]
    assert (calls, tokens, brokered) == (3, 1, 1)
    assert len(in_splunk.emulator.api_requests) == calls, "no Defender call"
    assert in_splunk.emulator.token_requests == tokens, "no token request to Entra ID"
    assert len(splunkd.requests_to(BROKER)) == brokered, "not even a token from the broker"
    for name in ("mde_alert_ids", "mde_max_open_severity", "mde_alert_titles"):
        assert warm.records[0][name] == cold.records[0][name]
    documents = {document["sha1"]: document for document in splunkd.kv_documents(CACHE)}
    assert set(documents) == {FIVE_ALERTS, KNOWN_NO_ALERTS, UNKNOWN}
    # A hit tells when Defender gave the answer (the cached entry's time), not when the cache was read.
    answered = iso_epoch(warm.records[0]["mde_retrieved_at"])
    assert answered == pytest.approx(documents[FIVE_ALERTS]["fetched_at"], abs=1e-3)


def test_generating_mode_uses_the_cache_too_and_says_so_on_every_event(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    cold = in_splunk.run(f"hash={FIVE_ALERTS}")
    warm = in_splunk.run(f'hash="{FIVE_ALERTS},{TWO_ALERTS}"')

    assert [r["mde_cache"] for r in cold.records] == ["miss"] * 5
    assert Counter((r["file_hash"], r["mde_cache"]) for r in warm.records) == {
        (FIVE_ALERTS, "hit"): 5,
        (TWO_ALERTS, "miss"): 2,
    }
    assert [r.path for r in in_splunk.emulator.api_requests] == [
        f"/api/files/{FIVE_ALERTS}/alerts",
        f"/api/files/{TWO_ALERTS}/alerts",
    ]
    assert [r["id"] for r in warm.records[:5]] == [r["id"] for r in cold.records]


def test_an_entry_older_than_its_time_to_live_is_looked_up_again(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    in_splunk.enrich([[event(1, FIVE_ALERTS), event(2, KNOWN_NO_ALERTS)]], "field=sha1")
    # Age the "no alerts" entry past its 900 s TTL (the default), as if written 20 minutes ago.
    stale = next(d for d in splunkd.kv_documents(CACHE) if d["sha1"] == KNOWN_NO_ALERTS)
    aged = {**stale, "fetched_at": stale["fetched_at"] - 1200, "expires_at": stale["expires_at"] - 1200}
    splunkd.kvstore.update("TA-mde-file-alerts", CACHE, "nobody", stale["_key"], aged)

    rerun = in_splunk.enrich([[event(1, FIVE_ALERTS), event(2, KNOWN_NO_ALERTS)]], "field=sha1")

    assert statuses(rerun) == [("event 1", "found", "hit"), ("event 2", "not_found", "miss")]
    assert [r.path for r in in_splunk.emulator.api_requests][-1] == f"/api/files/{KNOWN_NO_ALERTS}/alerts"
    assert len(in_splunk.emulator.api_requests) == 3


def test_a_ttl_of_zero_keeps_no_such_results(in_splunk: CommandHarness, splunkd: FakeSplunkd) -> None:
    splunkd.set_setting("cache", "ttl_not_found", "0")

    first = in_splunk.enrich([[event(1, FIVE_ALERTS), event(2, KNOWN_NO_ALERTS)]], "field=sha1")
    second = in_splunk.enrich([[event(1, FIVE_ALERTS), event(2, KNOWN_NO_ALERTS)]], "field=sha1")

    assert statuses(first) == [("event 1", "found", "miss"), ("event 2", "not_found", "miss")]
    assert statuses(second) == [("event 1", "found", "hit"), ("event 2", "not_found", "miss")]
    assert {d["sha1"] for d in splunkd.kv_documents(CACHE)} == {FIVE_ALERTS}


def test_cache_false_asks_defender_and_leaves_the_cache_alone(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1")
    reads_before = len(splunkd.requests_to(f"storage/collections/data/{CACHE}"))

    bypass = in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1", "cache=false")

    assert statuses(bypass) == [("event 1", "found", "bypass")]
    assert len(in_splunk.emulator.api_requests) == 2
    assert len(splunkd.requests_to(f"storage/collections/data/{CACHE}")) == reads_before


def test_without_the_kv_store_every_hash_is_a_miss_the_budget_is_local_and_one_warning_says_so(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1")
    splunkd.kvstore_available = False

    result = in_splunk.enrich(
        [[event(1, FIVE_ALERTS), event(2, KNOWN_NO_ALERTS)], [event(3, FIVE_ALERTS)]], "field=sha1"
    )

    result.assert_clean_exit()
    assert statuses(result) == [
        ("event 1", "found", "miss"),
        ("event 2", "not_found", "miss"),
        ("event 3", "found", "miss"),
    ]
    assert len(result.warnings) == 1, result.warnings
    assert "KV store" in result.warnings[0] and "this host" in result.warnings[0]
    assert result.errors == []
    assert list((in_splunk.workdir / "state" / "ratelimit").glob("ratelimit-*.json")), (
        "the file budget counted"
    )


def test_a_user_without_the_capability_gets_nothing_from_the_cache(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1")
    in_splunk.user = "intern"

    result = in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1")

    result.assert_clean_exit()
    assert len(result.errors) == 1 and "mde_file_alerts_lookup" in result.errors[0]
    assert result.records[0]["mde_status"] == "error" and "mde_alert_ids" not in result.records[0]


def test_a_disabled_account_is_refused_even_when_the_cache_could_answer(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1", "account=prod")
    splunkd.set_account("prod", **account_stanza_for(in_splunk.emulator), disabled="1")

    result = in_splunk.enrich([[event(1, FIVE_ALERTS)]], "field=sha1", "account=prod")

    result.assert_clean_exit()
    assert len(result.errors) == 1 and "'prod' is disabled" in result.errors[0]
    assert result.records[0]["mde_status"] == "error"


# --- the call budget ------------------------------------------------------------------------------------


def test_hashes_beyond_the_budget_are_reported_not_looked_up(
    in_splunk: CommandHarness, splunkd: FakeSplunkd
) -> None:
    splunkd.set_setting("budget", "calls_per_hour", "2")
    values = [f"{index:040x}" for index in range(1, 6)]

    result = in_splunk.enrich(
        [[event(n, value) for n, value in enumerate(values, 1)]], "field=sha1", "cache=false"
    )

    result.assert_clean_exit()
    # Four workers ask for the budget at once: which two hashes get it is up to them.
    by_status: dict[str, list[str]] = {}
    for record in result.records:
        by_status.setdefault(record["mde_status"], []).append(record["sha1"])
    assert {status: len(found) for status, found in by_status.items()} == {"not_found": 2, "not_looked_up": 3}
    assert len(in_splunk.emulator.api_requests) == 2 and in_splunk.emulator.throttled_count == 0
    skipped = [r for r in result.records if r["mde_status"] == "not_looked_up"]
    assert all("budget" in r["mde_message"] and "mde_alert_count" not in r for r in skipped)
    assert len(result.warnings) == 3
    for value in by_status["not_looked_up"]:
        assert any(value in warning and "not looked up" in warning for warning in result.warnings)


def test_concurrent_searches_share_one_budget_and_no_429_reaches_any(tmp_path: Path) -> None:
    calls_per_hour, searches, hashes_each = 10, 3, 6
    with (
        DefenderEmulator(rate_limits=((calls_per_hour, 3600.0),)) as emulator,
        FakeSplunkd(
            users={"analyst": [ANALYST_ROLE]},
            accounts={"prod": account_stanza_for(emulator)},
            passwords={"prod": emulator.client_secret},
            settings={"budget": {"calls_per_hour": str(calls_per_hour)}},
        ) as splunkd,
    ):
        harnesses = [
            CommandHarness(tmp_path / f"search{n}", emulator, splunkd=splunkd) for n in range(searches)
        ]
        results: list[CommandResult] = []

        def search(number: int) -> None:
            chunk = [event(i, f"{number:02x}{i:038x}") for i in range(hashes_each)]
            results.append(harnesses[number].enrich([chunk[:3], chunk[3:]], "field=sha1", "timeout=60"))

        threads = [threading.Thread(target=search, args=(n,)) for n in range(searches)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(results) == searches
        for result in results:
            result.assert_clean_exit()
        found = Counter(record["mde_status"] for result in results for record in result.records)
        assert found == {
            "not_found": calls_per_hour,
            "not_looked_up": searches * hashes_each - calls_per_hour,
        }
        assert emulator.throttled_count == 0
        assert [request.status for request in emulator.api_requests] == [200] * calls_per_hour
