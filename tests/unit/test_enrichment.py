"""enrichment.py: which hash an event's field yields, and the summary fields an event gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts import cim
from mde_file_alerts.enrichment import (
    SUMMARY_FIELDS,
    choose_hash,
    expanded_rows,
    summary_fields,
    unusable_value_fields,
)
from mde_file_alerts.errors import BudgetExhausted
from mde_file_alerts.hashes import parse_hash
from mde_file_alerts.outcome import HashOutcome, HashStatus

ALERTS = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"
SHA1 = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
OTHER_SHA1 = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"
MD5 = "07bea46d337f59863c0064e72ce7f303"
SHA256 = "43788a2067c4aa5eb5b9cc2fd6149309fca757550d94b890c393e386c49a3fc4"
RETRIEVED = 1_717_000_000.0


def alert(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ALERTS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def found(*names: str) -> HashOutcome:
    return HashOutcome(parse_hash(SHA1), HashStatus.FOUND, alerts=[alert(name) for name in names], sha1=SHA1)


# --- which hash a field holds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        SHA1,
        SHA1.upper(),
        f"  {SHA1} ",
        [SHA1],
        [MD5, SHA1],
        f"SHA1={SHA1.upper()},MD5={MD5},SHA256={SHA256},IMPHASH={MD5}",
        f"MD5={MD5};SHA1={SHA1}",
        f'"{SHA1}"',
    ],
)
def test_the_sha1_is_found_however_the_field_holds_it(value: Any) -> None:
    choice = choose_hash(value, "Hashes")
    assert choice.query is not None and choice.query.value == SHA1
    assert choice.problem is None and choice.note is None


@pytest.mark.parametrize("value", [None, "", "   ", [], ["", None]])
def test_an_empty_field_is_a_problem_that_names_the_field(value: Any) -> None:
    choice = choose_hash(value, "process_hash")
    assert choice.query is None
    assert choice.problem == "The event has no value in field 'process_hash' to look up."


def test_a_value_that_is_no_sha1_gets_the_precise_reason() -> None:
    choice = choose_hash(MD5, "file_hash")
    assert choice.query is None
    assert choice.problem is not None and "MD5" in choice.problem and MD5 in choice.problem


def test_a_sha256_is_used_only_when_the_search_resolves_them() -> None:
    refused = choose_hash(f"MD5={MD5},SHA256={SHA256}", "Hashes")
    resolved = choose_hash(f"MD5={MD5},SHA256={SHA256}", "Hashes", resolve_sha256=True)
    assert refused.query is None and refused.problem is not None and "MD5" in refused.problem
    assert resolved.query is not None and resolved.query.value == SHA256


def test_several_different_sha1s_look_up_the_first_and_say_so() -> None:
    choice = choose_hash([SHA1, OTHER_SHA1, SHA1.upper()], "file_hash")
    assert choice.query is not None and choice.query.value == SHA1
    assert (
        choice.note is not None and "2 different SHA-1" in choice.note and "mvexpand file_hash" in choice.note
    )


# --- summary fields ----------------------------------------------------------------------------------


def test_a_file_with_alerts_is_summed_up_with_open_alerts_and_severities() -> None:
    outcome = found(
        "demo-automated-investigation-resolved", "demo-c2-beacon-medium", "jp-invoice-dropper-low"
    )

    summary = summary_fields(outcome, cim.CACHE_HIT_VALUE, retrieved_at=RETRIEVED, account="prod")

    assert list(summary) == list(SUMMARY_FIELDS)
    assert summary[cim.STATUS] == "found"
    assert summary[cim.STATUS_ALERT_COUNT] == 3
    assert summary[cim.OPEN_ALERT_COUNT] == 2
    assert summary[cim.MAX_SEVERITY] == "high"  # the resolved alert
    assert summary[cim.MAX_OPEN_SEVERITY] == "medium"
    assert summary[cim.ALERT_STATUSES] == ["Resolved", "InProgress", "New"]
    assert summary[cim.ALERT_IDS] == [a["id"] for a in outcome.alerts]
    assert summary[cim.ALERT_TECHNIQUES] == ["T1071.001", "T1573.002", "T1566.002", "T1204.002"]
    assert summary[cim.ALERT_DEVICES] == ["ws-0142.corp.contoso.com", "pc-tokyo-017.jp.contoso.com"]
    assert summary[cim.LAST_ALERT_TIME] == "2024-02-06T01:37:37.140000Z"
    assert summary[cim.LOOKUP_MESSAGE] == (
        f"3 Defender alerts for file {SHA1} (2 open, highest severity high)."
    )
    assert summary[cim.CACHE] == "hit"
    assert summary[cim.ACCOUNT] == "prod"
    assert summary[cim.RETRIEVED_AT] == "2024-05-29T16:26:40.000000Z"
    assert summary[cim.QUERIED_HASH] == summary[cim.STATUS_SHA1] == SHA1


def test_only_resolved_alerts_leave_no_open_severity() -> None:
    summary = summary_fields(found("rtool-admin-false-positive"), cim.CACHE_MISS_VALUE)
    assert summary[cim.OPEN_ALERT_COUNT] == 0
    assert summary[cim.MAX_OPEN_SEVERITY] is None
    assert summary[cim.MAX_SEVERITY] == "low"


def test_unspecified_severity_is_cims_unknown_and_ranks_lowest() -> None:
    summary = summary_fields(
        found("linux-null-category-unspecified", "demo-informational-no-evidence"), "miss"
    )
    assert summary[cim.MAX_SEVERITY] == "informational"
    only = summary_fields(found("linux-null-category-unspecified"), "miss")
    assert only[cim.MAX_SEVERITY] == "unknown"


def test_drifted_alerts_are_read_without_failing() -> None:
    odd: list[Any] = [
        {"id": 7, "title": None, "severity": "Critical", "status": None, "mitreTechniques": "T1, T2"},
        "not an alert",
    ]
    outcome = HashOutcome(parse_hash(SHA1), HashStatus.FOUND, alerts=odd, sha1=SHA1)
    summary = summary_fields(outcome, "miss")
    assert summary[cim.STATUS_ALERT_COUNT] == 2
    assert summary[cim.ALERT_IDS] == ["7"]
    assert summary[cim.ALERT_TECHNIQUES] == ["T1", "T2"]
    assert summary[cim.MAX_SEVERITY] == "critical"
    assert summary[cim.ALERT_TITLES] is None


def test_no_alerts_counts_zero_and_says_so() -> None:
    outcome = HashOutcome(parse_hash(SHA1), HashStatus.NOT_FOUND, sha1=SHA1)
    summary = summary_fields(outcome, cim.CACHE_MISS_VALUE)
    assert summary[cim.STATUS] == "not_found"
    assert summary[cim.STATUS_ALERT_COUNT] == 0 and summary[cim.OPEN_ALERT_COUNT] == 0
    assert summary[cim.LOOKUP_MESSAGE] == f"No Defender alerts for file {SHA1}."
    assert summary[cim.MAX_SEVERITY] is None and summary[cim.ALERT_IDS] is None


def test_a_hash_not_looked_up_has_no_count_rather_than_zero() -> None:
    outcome = HashOutcome(parse_hash(SHA1), HashStatus.NOT_LOOKED_UP, error=BudgetExhausted())
    summary = summary_fields(outcome, cim.CACHE_MISS_VALUE)
    assert summary[cim.STATUS] == "not_looked_up"
    assert summary[cim.STATUS_ALERT_COUNT] is None and summary[cim.OPEN_ALERT_COUNT] is None
    assert SHA1 in summary[cim.LOOKUP_MESSAGE] and "not looked up" in summary[cim.LOOKUP_MESSAGE]


def test_an_unusable_value_sets_every_summary_field() -> None:
    summary = unusable_value_fields("The event has no value in field 'sha1' to look up.")
    assert list(summary) == list(SUMMARY_FIELDS)
    assert summary[cim.STATUS] == "invalid_hash"
    assert summary[cim.CACHE] == "bypass"
    assert summary[cim.STATUS_ALERT_COUNT] is None


# --- expand=true --------------------------------------------------------------------------------------


def test_expanded_rows_keep_the_events_metadata_and_take_the_alerts_fields() -> None:
    event = {"_time": "1700000000", "_raw": "EventCode=1 ...", "host": "ws-0142", "sha1": SHA1, "user": "bob"}
    alerts = [
        {
            "_time": 1.0,
            "_raw": "{}",
            "host": "api",
            "source": "s",
            "sourcetype": "ms:defender:atp:alerts",
            "id": "a1",
            "user": "alice",
        },
        {"_time": 2.0, "_raw": "{}", "id": "a2"},
    ]

    rows = expanded_rows(event, alerts, cim.CACHE_HIT_VALUE)

    assert [row["id"] for row in rows] == ["a1", "a2"]
    assert all(row["_raw"] == "EventCode=1 ..." and row["host"] == "ws-0142" for row in rows)
    assert all(row["_time"] == "1700000000" and "sourcetype" not in row for row in rows)
    assert rows[0]["user"] == "alice" and rows[1]["user"] == "bob"
    assert all(row[cim.CACHE] == "hit" and row["sha1"] == SHA1 for row in rows)
