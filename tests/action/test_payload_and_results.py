"""The alert action's inputs: splunkd's JSON payload and the gzip CSV of the triggering results."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.alert_action import DEFAULT_INDEX, ActionPayload, read_result_hashes
from mde_file_alerts.errors import ConfigurationError
from tests.action.results import write_results

SHA1_A = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
SHA1_B = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"


def payload(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "app": "SplunkEnterpriseSecuritySuite",
        "owner": "admin",
        "results_file": "/opt/splunk/var/run/splunk/dispatch/x/results.csv.gz",
        "server_uri": "https://127.0.0.1:8089",
        "session_key": "the-session-key",
        "sid": "scheduler__admin__search__RMD5abc_at_1700000000_42",
        "search_name": "Endpoint - Suspicious file - Rule",
        "configuration": {"account": "prod", "hash_field": "file_hash", "index": "mde"},
        "result": {"file_hash": SHA1_A},
    }
    document.update(changes)
    return document


def parse(document: dict[str, Any]) -> ActionPayload:
    return ActionPayload.from_json(json.dumps(document).encode())


# --- the payload -----------------------------------------------------------------------------------


def test_a_scheduled_search_payload_gives_every_setting() -> None:
    parsed = parse(payload())
    assert parsed.hash_field == "file_hash" and parsed.index == "mde" and parsed.account == "prod"
    assert parsed.server_uri == "https://127.0.0.1:8089"
    assert parsed.session_key.reveal() == "the-session-key"
    assert parsed.action_mode == "saved" and parsed.result_id is None


def test_the_session_key_never_shows_in_the_payloads_repr() -> None:
    assert "the-session-key" not in repr(parse(payload()))


def test_an_empty_account_means_the_default_account_and_an_empty_index_means_main() -> None:
    parsed = parse(payload(configuration={"account": "", "hash_field": "file_hash", "index": ""}))
    assert parsed.account is None and parsed.index == DEFAULT_INDEX == "main"


def test_an_adhoc_run_from_incident_review_carries_its_result_id() -> None:
    parsed = parse(payload(sid="1700000000.77", result_id=3))
    assert parsed.action_mode == "adhoc" and parsed.result_id == "3"


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (payload(configuration={"index": "main"}), "Hash field"),
        (payload(configuration={"hash_field": "  ", "index": "main"}), "Hash field"),
        (
            payload(configuration={"hash_field": "file_hash", "index": "_internal"}),
            "'_internal' is not a valid index",
        ),
        (payload(configuration={"hash_field": "file_hash", "index": "Main Index"}), "not a valid index"),
        (payload(results_file=""), "no results file"),
    ],
)
def test_a_payload_that_cannot_work_names_what_to_fix(document: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        parse(document)


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_input_that_is_not_a_payload_is_refused_in_one_sentence(data: bytes) -> None:
    with pytest.raises(ConfigurationError, match="payload"):
        ActionPayload.from_json(data)


# --- the results file ------------------------------------------------------------------------------


def test_single_and_multivalue_hash_fields_give_every_value_in_order(tmp_path: Path) -> None:
    path = write_results(
        tmp_path / "results.csv.gz",
        [
            {"file_hash": SHA1_A, "dest": "ws-01"},
            {"file_hash": [SHA1_B.upper(), "d41d8cd98f00b204e9800998ecf8427e"], "dest": "ws-02"},
            {"file_hash": "", "dest": "ws-03"},
            {"file_hash": f"{SHA1_A}, {SHA1_B}", "dest": "ws-04"},
        ],
    )

    found = read_result_hashes(str(path), "file_hash")

    assert found.rows == 4 and found.rows_without_value == 1
    assert found.values == [SHA1_A, SHA1_B.upper(), "d41d8cd98f00b204e9800998ecf8427e", SHA1_A, SHA1_B]


def test_a_dollar_inside_a_multivalue_is_kept(tmp_path: Path) -> None:
    path = write_results(tmp_path / "results.csv.gz", [{"note": ["a$b", "c"], "file_hash": SHA1_A}])
    assert read_result_hashes(str(path), "note").values == ["a$b", "c"]


def test_values_larger_than_the_csv_modules_default_limit_are_read(tmp_path: Path) -> None:
    path = write_results(tmp_path / "results.csv.gz", [{"_raw": "x" * 300_000, "file_hash": SHA1_A}])
    assert read_result_hashes(str(path), "file_hash").values == [SHA1_A]


def test_a_missing_field_lists_the_fields_there_are(tmp_path: Path) -> None:
    path = write_results(tmp_path / "results.csv.gz", [{"sha1": SHA1_A, "dest": "ws-01"}])
    with pytest.raises(ConfigurationError, match=r"no field 'file_hash'.*one of: sha1, dest\.$"):
        read_result_hashes(str(path), "file_hash")


def test_an_empty_results_file_has_no_hashes(tmp_path: Path) -> None:
    path = tmp_path / "results.csv.gz"
    with gzip.open(path, "wt") as stream:
        stream.write("")
    found = read_result_hashes(str(path), "file_hash")
    assert found.rows == 0 and found.values == []


@pytest.mark.parametrize("content", [None, b"not gzip at all"])
def test_a_missing_or_unreadable_results_file_is_one_sentence_without_the_path(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "results.csv.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        read_result_hashes(str(path), "file_hash")
    assert caught.value.user_message.startswith("Could not read the search results file")
    assert str(path) not in caught.value.user_message
    assert str(path) in str(caught.value), "the log form keeps the path for the admin"
