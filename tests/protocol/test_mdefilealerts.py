"""| mdefilealerts end to end: the real command, the chunked protocol, HTTPS to the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.protocol.conftest import ANALYST_ROLE, CommandHarness, CommandResult
from tests.support.emulator import DefenderEmulator, ErrorStatus, MalformedJson
from tests.support.splunkd import SYSTEM_USER, FakeSplunkd, account_stanza_for

FIVE_ALERTS = "6532ec91d513acc05f43ee0aa3002599729fd3e1"
TWO_ALERTS = "84abd80a4572c04c3a8a44ec5da93a3988a63fac"
KNOWN_NO_ALERTS = "32f220fcfff4fe90b95b9ada3cd0148d673cf1b0"
UNKNOWN = "0123456789abcdef0123456789abcdef01234567"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def assert_no_secret(result: CommandResult, emulator: DefenderEmulator) -> None:
    assert emulator.client_secret not in result.everything_visible
    assert "BEGIN PRIVATE KEY" not in result.everything_visible
    assert "Bearer " not in result.everything_visible


def hashes(*values: str) -> str:
    return f'hash="{",".join(values)}"'


# --- the command as splunkd sees it ------------------------------------------------------------


def test_getinfo_declares_a_generating_command_that_stays_on_the_search_head(local: CommandHarness) -> None:
    result = local.run(f"hash={FIVE_ALERTS}")
    assert result.run.getinfo["generating"] is True
    assert result.run.getinfo["type"] == "stateful"
    assert result.run.replies[-1].metadata["finished"] is True


def test_one_hash_with_several_alerts_gives_one_event_per_alert(local: CommandHarness) -> None:
    result = local.run(f"hash={FIVE_ALERTS}")

    result.assert_clean_exit()
    assert len(result.records) == 5
    assert result.run.messages == []
    for record in result.records:
        alert = json.loads(record["_raw"])
        assert record["id"] == alert["id"]
        assert record["signature"] == alert["title"]
        assert record["severity"] == alert["severity"].lower().replace("unspecified", "unknown")
        assert record["file_hash"] == FIVE_ALERTS
        assert record["sourcetype"] == "ms:defender:atp:alerts"
        assert record["mde_schema"] == "valid"
        assert float(record["_time"]) > 1_500_000_000
    assert_no_secret(result, local.emulator)


def test_multivalue_fields_reach_splunk_as_multivalues(local: CommandHarness) -> None:
    result = local.run(f"hash={FIVE_ALERTS}")
    techniques = [r["mitre_technique_id"] for r in result.records if "mitre_technique_id" in r]
    assert any(isinstance(value, list) and "T1055.001" in value for value in techniques)


def test_many_hashes_report_each_one_without_alerts_and_never_call_for_invalid_values(
    local: CommandHarness,
) -> None:
    result = local.run(hashes(FIVE_ALERTS, TWO_ALERTS, UNKNOWN, MD5, SHA256, "junk{0}!", FIVE_ALERTS.upper()))

    result.assert_clean_exit()
    assert len(result.records) == 7
    assert {r["file_hash"] for r in result.records} == {FIVE_ALERTS, TWO_ALERTS}
    warnings = result.warnings
    assert len(warnings) == 4, warnings
    assert any(UNKNOWN in text and "No Defender alerts" in text for text in warnings)
    assert any(MD5 in text and "MD5" in text for text in warnings)
    assert any("SHA-256" in text and "resolve_sha256" in text for text in warnings)
    assert any("junk{0}!" in text for text in warnings)
    called = sorted(r.path for r in local.emulator.api_requests)
    assert called == sorted(f"/api/files/{h}/alerts" for h in (FIVE_ALERTS, TWO_ALERTS, UNKNOWN))


def test_no_alerts_anywhere_returns_no_events_and_says_so_per_hash(local: CommandHarness) -> None:
    result = local.run(hashes(KNOWN_NO_ALERTS, UNKNOWN))

    result.assert_clean_exit()
    assert result.records == []
    assert sorted(result.warnings) == sorted(
        [f"No Defender alerts for file {KNOWN_NO_ALERTS}.", f"No Defender alerts for file {UNKNOWN}."]
    )


def test_a_sha256_is_resolved_to_its_sha1_when_asked(local: CommandHarness) -> None:
    sha256 = next(f.sha256 for f in local.emulator.known_files() if f.sha1 == TWO_ALERTS)
    result = local.run(f"hash={sha256}", "resolve_sha256=true")

    result.assert_clean_exit()
    assert len(result.records) == 2
    assert all(r["file_hash"] == TWO_ALERTS and r["mde_queried_sha256"] == sha256 for r in result.records)


def test_small_maxresultrows_pages_every_event_through(local: CommandHarness) -> None:
    result = local.run(hashes(FIVE_ALERTS, TWO_ALERTS), maxresultrows=2)

    result.assert_clean_exit()
    assert len(result.records) == 7
    assert len(result.run.replies) >= 4
    assert [reply.metadata.get("finished") for reply in result.run.replies[:-1]] == [False] * (
        len(result.run.replies) - 1
    )
    assert len({r["id"] + r["file_hash"] for r in result.records}) == 7


# --- throttling, faults, tokens -------------------------------------------------------------


def test_throttling_that_ends_within_the_deadline_is_waited_out(local: CommandHarness) -> None:
    local.emulator.inject(ErrorStatus(429, retry_after=30), sha1=FIVE_ALERTS, times=1)

    result = local.run(f"hash={FIVE_ALERTS}", "timeout=120")

    result.assert_clean_exit()
    assert len(result.records) == 5
    assert result.warnings == []
    assert 30 in result.virtual_sleeps, "Retry-After must be honoured, never retried sooner"


def test_throttling_beyond_the_deadline_is_reported_and_the_other_hashes_complete(
    local: CommandHarness,
) -> None:
    local.emulator.inject(ErrorStatus(429, retry_after=600), sha1=FIVE_ALERTS, times=None)

    result = local.run(hashes(FIVE_ALERTS, TWO_ALERTS), "timeout=60")

    result.assert_clean_exit()
    assert {r["file_hash"] for r in result.records} == {TWO_ALERTS}
    assert len(result.warnings) == 1
    assert FIVE_ALERTS in result.warnings[0] and "throttl" in result.warnings[0].lower()


def test_an_expired_token_is_refreshed_once_and_the_lookup_succeeds(local: CommandHarness) -> None:
    local.emulator.inject(ErrorStatus(401), sha1=FIVE_ALERTS, times=1)

    result = local.run(f"hash={FIVE_ALERTS}")

    result.assert_clean_exit()
    assert len(result.records) == 5
    assert local.emulator.token_requests == 2


def test_a_malformed_response_fails_that_hash_only(local: CommandHarness) -> None:
    local.emulator.inject(MalformedJson(), sha1=FIVE_ALERTS, times=None)

    result = local.run(hashes(FIVE_ALERTS, TWO_ALERTS))

    result.assert_clean_exit()
    assert {r["file_hash"] for r in result.records} == {TWO_ALERTS}
    assert len(result.errors) == 1 and FIVE_ALERTS in result.errors[0]


def test_a_server_error_page_is_retried_then_reported_for_that_hash(local: CommandHarness) -> None:
    local.emulator.inject(ErrorStatus(503, body="html"), sha1=FIVE_ALERTS, times=None)

    result = local.run(hashes(FIVE_ALERTS, TWO_ALERTS))

    result.assert_clean_exit()
    assert {r["file_hash"] for r in result.records} == {TWO_ALERTS}
    assert len(result.errors) == 1 and FIVE_ALERTS in result.errors[0] and "503" in result.errors[0]
    assert sum(1 for r in local.emulator.api_requests if FIVE_ALERTS in r.path) > 1


def test_a_wrong_secret_is_one_clean_error_with_microsofts_code(
    tmp_path: Path, emulator: DefenderEmulator
) -> None:
    wrong = "wrong-secret-canary-7f3a9c"
    account_file = emulator.write_account_file(tmp_path / "account.json", client_secret=wrong)
    harness = CommandHarness(tmp_path, emulator, account_file=account_file)

    result = harness.run(hashes(FIVE_ALERTS, TWO_ALERTS))

    result.assert_clean_exit()
    assert result.records == []
    assert len(result.errors) == 1 and "AADSTS7000215" in result.errors[0]
    assert wrong not in result.everything_visible
    assert emulator.api_requests == []


def test_missing_api_permission_is_one_clean_error_for_the_whole_search(local: CommandHarness) -> None:
    # A token for another audience is what Defender answers 403 to, like a missing permission.
    local.emulator.api_scope = "https://api.example.invalid/.default"

    result = local.run(hashes(FIVE_ALERTS, TWO_ALERTS, UNKNOWN))

    result.assert_clean_exit()
    assert result.records == []
    assert len(result.errors) == 1
    assert "Alert.Read.All" in result.errors[0] and "403" in result.errors[0]


def test_strict_validation_leaves_out_a_broken_alert_and_says_so(local: CommandHarness) -> None:
    good = json.loads(
        (Path(__file__).parents[1] / "fixtures" / "alerts" / "lolbin-renamed-binary-low.json").read_text()
    )
    broken = {**good, "id": "da000000000000000000_1", "severity": 5, "mitreTechniques": "T1036"}
    sha1 = "aa" * 20
    local.emulator.add_file(sha1, [good, broken])

    strict = local.run(f"hash={sha1}", "validate=strict")
    local.emulator.add_file(sha1, [good, broken])
    warn = local.run(f"hash={sha1}")

    strict.assert_clean_exit()
    assert [r["id"] for r in strict.records] == [good["id"]]
    assert len(strict.warnings) == 1 and "strict" in strict.warnings[0]
    assert sorted(r["mde_schema"] for r in warn.records) == ["invalid", "valid"]
    invalid = next(r for r in warn.records if r["mde_schema"] == "invalid")
    assert "severity" in " ".join(
        invalid["mde_schema_errors"]
        if isinstance(invalid["mde_schema_errors"], list)
        else [invalid["mde_schema_errors"]]
    )


def test_every_lookup_is_logged_with_its_status_and_no_secret(local: CommandHarness) -> None:
    result = local.run(hashes(FIVE_ALERTS, UNKNOWN))

    lines = result.log_text.splitlines()
    assert any(FIVE_ALERTS in line and "found" in line for line in lines)
    assert any(UNKNOWN in line and "not_found" in line for line in lines)
    assert_no_secret(result, local.emulator)


def test_no_usable_hash_value_is_one_clean_error(local: CommandHarness) -> None:
    result = local.run('hash=" , ;"')
    result.assert_clean_exit()
    assert result.records == [] and len(result.errors) == 1 and "hash" in result.errors[0]


def test_an_account_name_the_account_file_does_not_define_is_refused(local: CommandHarness) -> None:
    result = local.run(f"hash={FIVE_ALERTS}", "account=prod")
    result.assert_clean_exit()
    assert result.records == [] and len(result.errors) == 1 and "'prod'" in result.errors[0]


# --- inside Splunk: capability, broker, accounts ----------------------------------------------


@pytest.fixture
def in_splunk(tmp_path: Path, emulator: DefenderEmulator) -> Iterator[CommandHarness]:
    with FakeSplunkd(
        users={"analyst": [ANALYST_ROLE], "intern": ["user"]},
        accounts={"prod": account_stanza_for(emulator)},
        passwords={"prod": emulator.client_secret},
    ) as splunkd:
        yield CommandHarness(tmp_path, emulator, splunkd=splunkd)


def test_an_analyst_gets_alerts_through_the_token_broker_without_ever_holding_the_secret(
    in_splunk: CommandHarness,
) -> None:
    result = in_splunk.run(hashes(FIVE_ALERTS, KNOWN_NO_ALERTS))

    result.assert_clean_exit()
    assert len(result.records) == 5
    assert all(r["mde_account"] == "prod" for r in result.records)
    assert result.warnings == [f"No Defender alerts for file {KNOWN_NO_ALERTS}."]
    assert_no_secret(result, in_splunk.emulator)
    assert in_splunk.splunkd is not None
    secret_reads = in_splunk.splunkd.requests_to("storage/passwords")
    assert secret_reads, "the broker reads the secret from storage/passwords"
    assert {request.user for request in secret_reads} == {SYSTEM_USER}, "only splunkd's system identity"


def test_a_user_without_the_capability_gets_one_sentence_and_no_defender_call(
    in_splunk: CommandHarness,
) -> None:
    in_splunk.user = "intern"
    result = in_splunk.run(f"hash={FIVE_ALERTS}")

    result.assert_clean_exit()
    assert result.records == []
    assert len(result.errors) == 1 and "mde_file_alerts_lookup" in result.errors[0]
    assert in_splunk.emulator.api_requests == []


def test_no_configured_account_tells_the_admin_what_to_do(tmp_path: Path, emulator: DefenderEmulator) -> None:
    with FakeSplunkd(users={"analyst": [ANALYST_ROLE]}) as splunkd:
        result = CommandHarness(tmp_path, emulator, splunkd=splunkd).run(f"hash={FIVE_ALERTS}")

    result.assert_clean_exit()
    assert result.records == []
    assert len(result.errors) == 1 and "account" in result.errors[0].lower()


def test_an_unknown_account_name_lists_the_configured_ones(in_splunk: CommandHarness) -> None:
    result = in_splunk.run(f"hash={FIVE_ALERTS}", "account=staging")
    result.assert_clean_exit()
    assert len(result.errors) == 1 and "staging" in result.errors[0] and "prod" in result.errors[0]


def test_an_unreachable_splunkd_is_one_clean_error(tmp_path: Path, emulator: DefenderEmulator) -> None:
    with FakeSplunkd(users={"analyst": [ANALYST_ROLE]}) as splunkd:
        address = (splunkd.uri, splunkd.session_key_for("analyst"))
    # The fake has stopped: its port is closed.
    result = CommandHarness(tmp_path, emulator, stale_splunkd=address).run(f"hash={FIVE_ALERTS}")

    result.assert_clean_exit()
    assert result.records == [] and len(result.errors) == 1


def test_the_log_level_comes_from_the_apps_settings(tmp_path: Path, emulator: DefenderEmulator) -> None:
    with FakeSplunkd(
        users={"analyst": [ANALYST_ROLE]},
        accounts={"prod": account_stanza_for(emulator)},
        passwords={"prod": emulator.client_secret},
        settings={"logging": {"log_level": "DEBUG"}},
    ) as splunkd:
        result = CommandHarness(tmp_path, emulator, splunkd=splunkd).run(f"hash={FIVE_ALERTS}")

    result.assert_clean_exit()
    assert " DEBUG " in result.log_text
    assert_no_secret(result, emulator)
