"""``get file alerts`` run as SOAR runs it, against the HTTPS Defender emulator.

Every test asserts on the action result (status, message, data, summary), never on an exit code:
a failed SOAR action does not fail its process.
"""

from __future__ import annotations

import time

from mde_file_alerts import cim
from mde_file_alerts.hashes import parse_hash
from tests.integration.connect_proxy import ConnectProxy
from tests.soar.harness import asset_for, run_action, run_one
from tests.support.emulator import DefenderEmulator, ErrorStatus, KnownFile

ACTION = "get_file_alerts"
UNKNOWN_SHA1 = "0123456789abcdef0123456789abcdef01234567"
MD5 = "07bea46d337f59863c0064e72ce7f303"
PROXY_PASSWORD = "Pr0xy-" + "s3cr3t" * 4


def file_with_alerts(emu: DefenderEmulator, minimum: int = 2) -> KnownFile:
    return next(known for known in emu.known_files() if len(known.alerts) >= minimum and known.sha256)


def expected_severities(known: KnownFile) -> dict[str, int]:
    counts = dict.fromkeys(("high", "medium", "low", "informational", "unknown"), 0)
    for alert in known.alerts:
        counts[cim.SEVERITIES[alert["severity"]]] += 1
    return counts


def test_found_returns_every_alert_with_the_fields_playbooks_chain_on(emulator: DefenderEmulator) -> None:
    known = file_with_alerts(emulator)

    result = run_one(ACTION, asset_for(emulator), {"hash": known.sha1.upper()})

    assert result.success, result.message
    [item] = result.data
    assert item["queried_hash"] == known.sha1
    assert item["sha1"] == known.sha1
    assert item["status"] == "found"
    assert item["alert_count"] == len(known.alerts) == len(item["alerts"])
    assert [alert["alert_id"] for alert in item["alerts"]] == [alert["id"] for alert in known.alerts]
    first, source = item["alerts"][0], known.alerts[0]
    assert first["title"] == source["title"]
    assert first["device_id"] == source["machineId"]
    assert first["device_name"] == source["computerDnsName"]
    assert first["file_sha1"] == known.sha1
    assert first["schema_status"] == "valid"
    assert result.parameter == {"hash": known.sha1.upper(), "resolve_sha256": False}


def test_summary_counts_alerts_per_severity(emulator: DefenderEmulator) -> None:
    known = file_with_alerts(emulator)

    result = run_one(ACTION, asset_for(emulator), {"hash": known.sha1})

    expected = expected_severities(known)
    assert result.summary == {"total_alerts": len(known.alerts), **expected}
    assert result.message.startswith(f"{len(known.alerts)} Defender alert")
    for severity, count in expected.items():
        if count:
            assert f"{count} {severity}" in result.message


def test_no_alerts_is_a_success_with_a_zero_count(emulator: DefenderEmulator) -> None:
    result = run_one(ACTION, asset_for(emulator), {"hash": UNKNOWN_SHA1})

    assert result.success, result.message
    [item] = result.data
    assert item["status"] == "not_found"
    assert item["alert_count"] == 0
    assert item["alerts"] == []
    assert result.summary["total_alerts"] == 0
    assert result.message == f"No Defender alerts for file {UNKNOWN_SHA1}."


def test_an_md5_fails_with_the_precise_reason_before_any_request(emulator: DefenderEmulator) -> None:
    result = run_one(ACTION, asset_for(emulator), {"hash": MD5})

    assert not result.success
    problem = parse_hash(MD5).problem
    assert problem is not None and "MD5" in problem
    assert result.message.endswith(problem)
    assert result.data == []
    assert emulator.requests == []


def test_junk_fails_naming_the_first_bad_character(emulator: DefenderEmulator) -> None:
    result = run_one(ACTION, asset_for(emulator), {"hash": "6532ec91-d513"})

    assert not result.success
    assert result.message.endswith(str(parse_hash("6532ec91-d513").problem))
    assert "'-' at position 9" in result.message
    assert emulator.requests == []


def test_a_sha256_is_refused_unless_resolution_is_asked_for(emulator: DefenderEmulator) -> None:
    known = file_with_alerts(emulator)
    assert known.sha256 is not None

    refused = run_one(ACTION, asset_for(emulator), {"hash": known.sha256})
    resolved = run_one(ACTION, asset_for(emulator), {"hash": known.sha256, "resolve_sha256": True})

    assert not refused.success
    assert "SHA-256" in refused.message and "resolve_sha256" in refused.message
    assert resolved.success, resolved.message
    [item] = resolved.data
    assert (item["sha256"], item["sha1"], item["alert_count"]) == (
        known.sha256,
        known.sha1,
        len(known.alerts),
    )
    assert {alert["file_sha256"] for alert in item["alerts"]} == {known.sha256}


def test_a_sha256_defender_does_not_know_is_a_success_without_alerts(emulator: DefenderEmulator) -> None:
    unknown_sha256 = "ab" * 32

    result = run_one(ACTION, asset_for(emulator), {"hash": unknown_sha256, "resolve_sha256": True})

    assert result.success, result.message
    [item] = result.data
    assert (item["sha256"], item["sha1"], item["alert_count"]) == (unknown_sha256, None, 0)
    assert result.message == (
        f"Defender for Endpoint does not know a file with SHA-256 {unknown_sha256}, "
        "so it has no alerts for it."
    )


def test_throttling_beyond_the_lookup_timeout_fails_at_once(emulator: DefenderEmulator) -> None:
    known = file_with_alerts(emulator)
    emulator.inject(ErrorStatus(429, retry_after=120), times=None)
    started = time.monotonic()

    result = run_one(ACTION, asset_for(emulator, lookup_timeout=30), {"hash": known.sha1})

    assert not result.success
    assert f"throttled the lookup of file {known.sha1}" in result.message
    assert "retry after 120 seconds" in result.message
    assert len(emulator.api_requests) == 1
    assert time.monotonic() - started < 20, "the action waited instead of reporting the throttling"


def test_a_wrong_secret_fails_with_entra_ids_reason_and_no_secret(emulator: DefenderEmulator) -> None:
    wrong_secret = "Wr0ng8Q~" + "x" * 32
    known = file_with_alerts(emulator)

    result = run_one(ACTION, asset_for(emulator, client_secret=wrong_secret), {"hash": known.sha1})

    assert not result.success
    assert "AADSTS7000215" in result.message
    assert "Traceback" not in result.message
    assert wrong_secret not in result.as_text() and emulator.client_secret not in result.as_text()
    assert emulator.api_requests == []


def test_a_permission_problem_names_the_missing_permission(emulator: DefenderEmulator) -> None:
    emulator.inject(ErrorStatus(403), times=None)

    result = run_one(ACTION, asset_for(emulator), {"hash": UNKNOWN_SHA1})

    assert not result.success
    assert "Alert.Read.All" in result.message
    assert "HTTP 403" in result.message


def test_an_invalid_asset_is_reported_in_one_sentence_without_a_request(emulator: DefenderEmulator) -> None:
    asset = asset_for(emulator, api_host="http://127.0.0.1:1", tenant_id="not a tenant")

    result = run_one(ACTION, asset, {"hash": UNKNOWN_SHA1})

    assert not result.success
    assert "asset configuration" in result.message
    assert "api_host 'http://127.0.0.1:1' must use https://" in result.message
    assert "tenant_id 'not a tenant'" in result.message
    assert emulator.requests == []


def test_a_non_positive_lookup_timeout_is_a_configuration_error(emulator: DefenderEmulator) -> None:
    result = run_one(ACTION, asset_for(emulator, lookup_timeout=0), {"hash": UNKNOWN_SHA1})

    assert not result.success
    assert "lookup_timeout must be a positive number of seconds" in result.message


def test_several_hashes_in_one_run_get_one_result_each(emulator: DefenderEmulator) -> None:
    known = file_with_alerts(emulator)
    parameters = [{"hash": known.sha1}, {"hash": MD5}, {"hash": UNKNOWN_SHA1}]

    results = run_action(ACTION, asset_for(emulator), parameters)

    assert [result.success for result in results] == [True, False, True]
    assert results[0].summary["total_alerts"] == len(known.alerts)
    # The third run's summary and message are its own, not left over from the first.
    assert results[2].summary["total_alerts"] == 0
    assert results[2].message == f"No Defender alerts for file {UNKNOWN_SHA1}."
    assert MD5 in results[1].message


def test_the_assets_proxy_and_its_credentials_carry_the_lookup(emulator: DefenderEmulator) -> None:
    known = file_with_alerts(emulator)
    with ConnectProxy(credentials=("svc-soar", PROXY_PASSWORD)) as proxy:
        asset = asset_for(
            emulator, proxy_url=proxy.url, proxy_username="svc-soar", proxy_password=PROXY_PASSWORD
        )
        result = run_one(ACTION, asset, {"hash": known.sha1})

    assert result.success, result.message
    assert result.data[0]["alert_count"] == len(known.alerts)
    assert set(proxy.targets()) == {f"127.0.0.1:{emulator.port}"}
    assert {request.answered for request in proxy.requests} == {200}


def test_a_rejected_proxy_password_fails_without_showing_it(emulator: DefenderEmulator) -> None:
    wrong_password = "Wr0ng-" + PROXY_PASSWORD
    with ConnectProxy(credentials=("svc-soar", PROXY_PASSWORD)) as proxy:
        # A short lookup timeout leaves no time to retry the unreachable sign-in, so nothing waits.
        asset = asset_for(
            emulator,
            proxy_url=proxy.url,
            proxy_username="svc-soar",
            proxy_password=wrong_password,
            lookup_timeout=0.5,
        )
        result = run_one(ACTION, asset, {"hash": UNKNOWN_SHA1})

    assert not result.success
    assert "Traceback" not in result.message
    assert {request.answered for request in proxy.requests} == {407}
    assert wrong_password not in result.as_text()
    assert emulator.client_secret not in result.as_text()
