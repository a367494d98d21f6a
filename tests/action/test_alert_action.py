"""The alert action end to end: splunkd's payload in, Defender through the emulator, events out to splunkd.

Each test runs bin/mde_file_alerts_action.py as splunkd does and checks exactly what reached
receivers/simple (the alerts and the one summary event), the exit code, stderr (what splunkd
writes to splunkd.log) and the logs.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.action.conftest import (
    ALERT_SOURCETYPE,
    ANALYST_ROLE,
    SUMMARY_SOURCETYPE,
    ActionHarness,
    ActionRun,
    fake_splunkd,
)
from tests.support.emulator import DefenderEmulator, ErrorStatus

FIVE_ALERTS = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
TWO_ALERTS = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"
ONE_ALERT = "583e09022c9e9d2ddd35ff99d457c479972eae35"
KNOWN_NO_ALERTS = "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def defender_alerts(sha1: str) -> list[dict[str, Any]]:
    """The alerts the emulator holds for a file, as its fixture files define them."""
    files = json.loads((FIXTURES / "defender" / "files.json").read_text(encoding="utf-8"))
    return [
        json.loads((FIXTURES / "alerts" / name).read_text(encoding="utf-8")) for name in files[sha1]["alerts"]
    ]


def api_calls(emulator: DefenderEmulator) -> list[str]:
    return [request.path for request in emulator.api_requests]


def assert_no_secret(run: ActionRun, emulator: DefenderEmulator, session_key: str | None = None) -> None:
    visible = run.everything_visible
    assert emulator.client_secret not in visible
    assert "Bearer " not in visible and "BEGIN PRIVATE KEY" not in visible
    if session_key:
        assert session_key not in visible


# --- what is indexed ---------------------------------------------------------------------------------


def test_every_alert_is_indexed_as_defender_sent_it_with_the_mappings_source_and_sourcetype(
    action: ActionHarness,
) -> None:
    run = action.run(
        [{"file_hash": FIVE_ALERTS, "dest": "ws-01"}, {"file_hash": TWO_ALERTS, "dest": "ws-02"}]
    )

    assert run.exit_code == 0, run.stderr
    assert len(run.alerts) == 7
    for sha1 in (FIVE_ALERTS, TWO_ALERTS):
        events = [event for event in run.alerts if f"/api/files/{sha1}/alerts" in event.source]
        assert [event.json for event in events] == defender_alerts(sha1)
        for event in events:
            assert event.source == f"mde_file_alerts://prod/api/files/{sha1}/alerts"
            assert event.sourcetype == ALERT_SOURCETYPE
            assert event.index == "main"
            assert event.host == "127.0.0.1", "the API host the alert came from, as the mapping says"
            assert event.raw == json.dumps(event.json, ensure_ascii=False, separators=(",", ":"))
    run.assert_clean_stderr()


def test_multivalue_fields_and_repeated_hashes_are_looked_up_once_each(action: ActionHarness) -> None:
    run = action.run(
        [
            {"file_hash": [FIVE_ALERTS, ONE_ALERT]},
            {"file_hash": FIVE_ALERTS.upper()},
            {"file_hash": [ONE_ALERT, KNOWN_NO_ALERTS]},
        ]
    )

    assert run.exit_code == 0, run.stderr
    assert sorted(api_calls(action.emulator)) == sorted(
        f"/api/files/{sha1}/alerts" for sha1 in (FIVE_ALERTS, ONE_ALERT, KNOWN_NO_ALERTS)
    )
    assert len(run.alerts) == 6
    summary = run.summary
    assert summary["result_count"] == 3 and summary["hash_count"] == 3
    assert summary["status_counts"] == {"found": 2, "not_found": 1}
    assert [entry["hash"] for entry in summary["hashes"]] == [FIVE_ALERTS, ONE_ALERT, KNOWN_NO_ALERTS]


def test_the_summary_event_describes_the_run_for_the_soc_and_enterprise_security(
    action: ActionHarness,
) -> None:
    started = time.time()
    run = action.run([{"file_hash": FIVE_ALERTS}, {"file_hash": KNOWN_NO_ALERTS}, {"dest": "ws-03"}])

    assert run.exit_code == 0, run.stderr
    assert run.indexed[-1].sourcetype == SUMMARY_SOURCETYPE, "the summary comes after the alerts"
    summary_event = run.summaries[0]
    assert summary_event.source == "mde_file_alerts_action" and summary_event.index == "main"
    assert summary_event.host is None, "splunkd's own host name"
    assert summary_event.raw.startswith('{"time":"'), "props.conf finds the timestamp at the start"
    summary = run.summary
    event_time = datetime.strptime(summary["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(event_time.timestamp() - time.mktime(time.gmtime(started))) < 120
    assert summary["action_name"] == "mde_file_alerts_lookup"
    assert summary["action_status"] == "success" and summary["action_mode"] == "saved"
    assert summary["search_name"] == "Endpoint - Files seen on many hosts - Rule"
    assert summary["sid"] == summary["orig_sid"] == "scheduler__owner__search__RMD5a1b2c3_at_1700000000_7"
    assert summary["user"] == "owner" and summary["app"] == "search" and summary["account"] == "prod"
    assert summary["index"] == "main" and summary["hash_field"] == "file_hash"
    assert summary["result_count"] == 3 and summary["results_without_hash"] == 1
    assert summary["alert_count"] == 5 and summary["events_written"] == 5
    assert summary["hashes"] == [
        {
            "hash": FIVE_ALERTS,
            "status": "found",
            "alert_count": 5,
            "rejected_count": 0,
            "message": f"5 Defender alerts for file {FIVE_ALERTS}.",
            "cache": "miss",
        },
        {
            "hash": KNOWN_NO_ALERTS,
            "status": "not_found",
            "alert_count": 0,
            "rejected_count": 0,
            "message": f"No Defender alerts for file {KNOWN_NO_ALERTS}.",
            "cache": "miss",
        },
    ]
    assert summary["signature"] == (
        "5 Defender alerts for 1 of 2 files (field 'file_hash', 3 results) sent to index 'main'."
    )
    assert run.stderr_lines == [f"INFO {summary['signature']}"]


def test_the_chosen_index_and_hash_field_are_honoured(action: ActionHarness) -> None:
    run = action.run([{"sha1": ONE_ALERT}], hash_field="sha1", index="mde")

    assert run.exit_code == 0, run.stderr
    assert {event.index for event in run.indexed} == {"mde"}
    assert len(run.alerts) == 1 and run.summary["index"] == "mde"


def test_values_that_are_not_sha1_are_reported_and_never_sent_to_defender(action: ActionHarness) -> None:
    run = action.run([{"file_hash": [ONE_ALERT, MD5]}, {"file_hash": SHA256}, {"file_hash": "n/a"}])

    assert run.exit_code == 0, run.stderr
    assert api_calls(action.emulator) == [f"/api/files/{ONE_ALERT}/alerts"]
    assert len(run.alerts) == 1
    summary = run.summary
    assert summary["hash_count"] == 1 and summary["invalid_count"] == 3
    assert summary["invalid_values"] == [
        {"value": MD5, "kind": "md5"},
        {"value": SHA256, "kind": "sha256"},
        {"value": "n/a", "kind": "unknown"},
    ]
    warning = (
        "WARN 3 values in the hash field are not SHA-1 (1 MD5, 1 SHA-256, 1 other) and were not looked up: "
        "Defender's file alerts API accepts SHA-1 only."
    )
    assert run.stderr_lines[0] == warning
    assert summary["signature"].endswith(" 3 values in the field were not SHA-1 and skipped.")
    run.assert_clean_stderr()


def test_results_without_any_sha1_make_no_defender_call_and_still_leave_a_summary(
    action: ActionHarness,
) -> None:
    run = action.run([{"file_hash": ""}, {"file_hash": MD5}])

    assert run.exit_code == 0, run.stderr
    assert action.emulator.requests == [], "not even a token"
    assert run.alerts == []
    assert run.summary["action_status"] == "success"
    assert run.summary["signature"].startswith("No SHA-1 hash in field 'file_hash' of 2 results")


def test_a_second_run_is_answered_from_the_commands_result_cache_without_calling_defender(
    action: ActionHarness,
) -> None:
    rows = [{"file_hash": [TWO_ALERTS, KNOWN_NO_ALERTS]}]
    first = action.run(rows)
    calls_after_first = len(action.emulator.api_requests)

    second = action.run(rows)

    assert first.exit_code == second.exit_code == 0, second.stderr
    assert len(action.emulator.api_requests) == calls_after_first == 2
    assert [entry["cache"] for entry in first.summary["hashes"]] == ["miss", "miss"]
    assert [entry["cache"] for entry in second.summary["hashes"]] == ["hit", "hit"]
    assert [event.raw for event in second.alerts] == [event.raw for event in first.alerts]
    assert second.summary["status_counts"] == {"found": 1, "not_found": 1}


# --- one hash failing never costs the others ------------------------------------------------------------


def test_a_hash_whose_lookup_fails_is_reported_and_the_others_are_still_indexed(
    action: ActionHarness,
) -> None:
    action.emulator.inject(ErrorStatus(500), sha1=TWO_ALERTS, times=None)

    run = action.run([{"file_hash": [FIVE_ALERTS, TWO_ALERTS, ONE_ALERT]}])

    assert run.exit_code == 0, "the action ran; one hash's failure is data, not a failed run"
    assert {event.source.split("/")[-2] for event in run.alerts} == {FIVE_ALERTS, ONE_ALERT}
    assert len(run.alerts) == 6
    summary = run.summary
    assert summary["status_counts"] == {"error": 1, "found": 2}
    failed = [entry for entry in summary["hashes"] if entry["status"] == "error"]
    assert len(failed) == 1 and failed[0]["hash"] == TWO_ALERTS and "HTTP 500" in failed[0]["message"]
    warnings = [line for line in run.stderr_lines if line.startswith("WARN ")]
    assert len(warnings) == 1 and TWO_ALERTS in warnings[0]
    assert sum(run.virtual_sleeps) > 0, "the server errors were retried (in virtual time)"
    run.assert_clean_stderr()


def test_a_throttled_hash_waits_in_virtual_time_then_is_reported_without_losing_the_others(
    action: ActionHarness,
) -> None:
    action.emulator.inject(ErrorStatus(429, retry_after=3600), sha1=ONE_ALERT, times=None)

    run = action.run([{"file_hash": [ONE_ALERT, TWO_ALERTS]}])

    assert run.exit_code == 0, run.stderr
    assert len(run.alerts) == 2
    assert run.summary["status_counts"] == {"found": 1, "throttled": 1}
    assert any(line.startswith("WARN ") and "throttled" in line for line in run.stderr_lines)


# --- when the action cannot run --------------------------------------------------------------------------


def test_a_refused_sign_in_stops_the_run_with_one_error_line_and_a_failure_summary(
    tmp_path: Path, emulator: DefenderEmulator
) -> None:
    with fake_splunkd(emulator, passwords={"prod": "not-the-secret"}) as splunkd:
        run = ActionHarness(tmp_path, emulator, splunkd).run([{"file_hash": FIVE_ALERTS}])

    assert run.exit_code == 3
    assert api_calls(emulator) == []
    assert run.alerts == []
    assert run.summary["action_status"] == "failure"
    assert run.summary["signature"].startswith("The Defender lookup did not run: ")
    errors = [line for line in run.stderr_lines if line.startswith("ERROR ")]
    assert errors and all("AADSTS" in line or "did not run" in line for line in errors)
    assert 'action_status="failure"' in run.modalert_text
    run.assert_clean_stderr()
    assert_no_secret(run, emulator)


def test_an_owner_without_the_apps_capability_gets_no_token(
    tmp_path: Path, emulator: DefenderEmulator
) -> None:
    with fake_splunkd(
        emulator, users={"owner": ["writer"]}, roles={"writer": (["user"], ["edit_tcp"])}
    ) as splunkd:
        run = ActionHarness(tmp_path, emulator, splunkd).run([{"file_hash": FIVE_ALERTS}])

    assert run.exit_code == 3
    assert emulator.requests == []
    assert run.summary["action_status"] == "failure"
    assert "capability" in run.summary["failure"]
    run.assert_clean_stderr()


def test_defender_refusing_the_permission_stops_the_run_and_keeps_only_real_alerts(
    action: ActionHarness,
) -> None:
    action.emulator.inject(ErrorStatus(403), sha1=TWO_ALERTS, times=None)

    run = action.run([{"file_hash": ONE_ALERT}, {"file_hash": TWO_ALERTS}])

    assert run.exit_code == 3
    # Lookups run in parallel: the first file's alerts are kept when its answer came in first.
    assert {event.source.split("/")[-2] for event in run.alerts} <= {ONE_ALERT}
    assert "error" not in run.summary["status_counts"], "a fatal refusal is the run's failure, not a hash's"
    assert run.summary["action_status"] == "failure"
    assert run.summary["signature"].startswith("The Defender lookup ")
    assert "Alert.Read.All" in run.summary["failure"]
    run.assert_clean_stderr()


def test_a_missing_hash_field_names_the_fields_the_results_have(action: ActionHarness) -> None:
    run = action.run([{"sha1": FIVE_ALERTS, "dest": "ws-01"}])

    assert run.exit_code == 3
    assert action.emulator.requests == []
    assert "no field 'file_hash'" in run.summary["failure"] and "sha1, dest" in run.summary["failure"]
    run.assert_clean_stderr()


# --- when splunkd does not take the events -----------------------------------------------------------------


def test_an_index_that_does_not_exist_is_one_error_naming_it(action: ActionHarness) -> None:
    run = action.run([{"file_hash": ONE_ALERT}], index="nosuchindex")

    assert run.exit_code == 4
    assert run.indexed == []
    errors = [line for line in run.stderr_lines if line.startswith("ERROR ")]
    assert any("index 'nosuchindex'" in line for line in errors)
    assert 'action_status="failure"' in run.modalert_text
    run.assert_clean_stderr()


def test_an_owner_who_may_not_send_data_is_told_about_edit_tcp(
    tmp_path: Path, emulator: DefenderEmulator
) -> None:
    with fake_splunkd(emulator, users={"owner": [ANALYST_ROLE]}) as splunkd:
        run = ActionHarness(tmp_path, emulator, splunkd).run([{"file_hash": ONE_ALERT}])

    assert run.exit_code == 4
    assert run.indexed == []
    assert any(line.startswith("ERROR ") and "edit_tcp" in line for line in run.stderr_lines)


def test_an_unreachable_splunkd_is_one_clean_error(tmp_path: Path, emulator: DefenderEmulator) -> None:
    with fake_splunkd(emulator) as splunkd:
        harness = ActionHarness(tmp_path, emulator, splunkd)
        uri, key = splunkd.uri, splunkd.session_key_for("owner")
    # The fake has stopped: its port is closed.
    run = harness.run([{"file_hash": ONE_ALERT}], payload_changes={"server_uri": uri, "session_key": key})

    assert run.exit_code == 3
    assert emulator.requests == []
    assert any(line.startswith("ERROR ") and "splunkd" in line for line in run.stderr_lines)
    run.assert_clean_stderr()


# --- how splunkd starts it ---------------------------------------------------------------------------------


def test_without_execute_it_explains_how_it_is_run(action: ActionHarness) -> None:
    run = action.run([{"file_hash": ONE_ALERT}], argv=())
    assert run.exit_code == 2
    assert run.stderr_lines[0].startswith("ERROR ") and "--execute" in run.stderr_lines[0]
    assert action.emulator.requests == [] and run.indexed == []


def test_a_payload_that_is_not_json_is_one_error_line(action: ActionHarness) -> None:
    run = action.run([{"file_hash": ONE_ALERT}], stdin=b"session_key=abc")
    assert run.exit_code == 2
    assert len(run.stderr_lines) == 1 and "JSON payload" in run.stderr_lines[0]
    run.assert_clean_stderr()


def test_an_adhoc_run_from_incident_review_is_recorded_for_the_action_center(action: ActionHarness) -> None:
    run = action.run([{"file_hash": ONE_ALERT}], payload_changes={"sid": "1700000000.912", "result_id": "4"})

    assert run.exit_code == 0, run.stderr
    assert run.summary["action_mode"] == "adhoc" and run.summary["orig_rid"] == "4"
    lines = [line for line in run.modalert_text.splitlines() if "sendmodaction - " in line]
    assert len(lines) == 2
    assert 'signature="Invoking modular action"' in lines[0]
    for line in lines:
        assert 'action_name="mde_file_alerts_lookup"' in line and 'rid="4"' in line
        assert 'action_mode="adhoc"' in line and 'sid="1700000000.912"' in line
    assert 'action_status="success"' in lines[1]


# --- the account: Splunk's broker, or a local account file --------------------------------------------------


def test_with_a_local_account_file_the_action_signs_in_itself_and_still_indexes_through_splunkd(
    tmp_path: Path, emulator: DefenderEmulator
) -> None:
    with fake_splunkd(emulator, accounts={}, passwords={}) as splunkd:
        harness = ActionHarness(tmp_path, emulator, splunkd)
        harness.account_file = emulator.write_account_file(tmp_path / "account.json")
        run = harness.run([{"file_hash": TWO_ALERTS}])

    assert run.exit_code == 0, run.stderr
    assert len(run.alerts) == 2
    assert run.summary["account"] == json.loads(harness.account_file.read_text())["name"]


def test_no_secret_session_key_or_token_reaches_any_log_or_event(
    tmp_path: Path, emulator: DefenderEmulator
) -> None:
    emulator.inject(ErrorStatus(500), sha1=TWO_ALERTS, times=None)
    with fake_splunkd(emulator, settings={"logging": {"log_level": "DEBUG"}}) as splunkd:
        harness = ActionHarness(tmp_path, emulator, splunkd)
        key = splunkd.session_key_for("owner")
        run = harness.run([{"file_hash": [FIVE_ALERTS, TWO_ALERTS]}], payload_changes={"session_key": key})

    assert run.exit_code == 0, run.stderr
    assert " DEBUG " in run.log_text, "the app's log level applies to the action too"
    assert_no_secret(run, emulator, session_key=key)


@pytest.mark.parametrize("argv", [("--execute", "--execute")])
def test_an_execute_argument_given_twice_still_runs(action: ActionHarness, argv: tuple[str, ...]) -> None:
    # alert_actions.conf passes --execute explicitly (alert.execute.cmd.arg.0); it must not matter
    # if a splunkd version also adds its own.
    run = action.run([{"file_hash": ONE_ALERT}], argv=argv)
    assert run.exit_code == 0, run.stderr
