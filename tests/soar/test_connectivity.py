"""``test connectivity``: a token from Entra ID and one cheap Defender call, or one clear sentence."""

from __future__ import annotations

from soar.src.actions import CONNECTIVITY_PROBE_SHA1
from tests.soar.harness import asset_for, run_one
from tests.support.emulator import DefenderEmulator, ErrorStatus

ACTION = "test_connectivity"


def test_signs_in_and_makes_exactly_one_api_call(emulator: DefenderEmulator) -> None:
    result = run_one(ACTION, asset_for(emulator))

    assert result.success, result.message
    assert emulator.token_requests == 1
    assert [request.path for request in emulator.api_requests] == [
        f"/api/files/{CONNECTIVITY_PROBE_SHA1}/alerts"
    ]


def test_a_wrong_secret_fails_with_the_aadsts_code_before_any_api_call(emulator: DefenderEmulator) -> None:
    wrong_secret = "Wr0ng8Q~" + "y" * 32

    result = run_one(ACTION, asset_for(emulator, client_secret=wrong_secret))

    assert not result.success
    assert "AADSTS7000215" in result.message
    assert wrong_secret not in result.as_text()
    assert "Traceback" not in result.message
    assert emulator.api_requests == []


def test_an_unknown_tenant_is_named(emulator: DefenderEmulator) -> None:
    other_tenant = "00000000-0000-4000-8000-000000000000"

    result = run_one(ACTION, asset_for(emulator, tenant_id=other_tenant))

    assert not result.success
    assert other_tenant in result.message


def test_a_token_without_the_permission_fails_naming_it(emulator: DefenderEmulator) -> None:
    emulator.inject(ErrorStatus(403), times=None)

    result = run_one(ACTION, asset_for(emulator))

    assert not result.success
    assert "Alert.Read.All" in result.message


def test_a_missing_secret_is_a_configuration_message_without_a_request(emulator: DefenderEmulator) -> None:
    result = run_one(ACTION, asset_for(emulator, client_secret=None))

    assert not result.success
    assert "missing credentials" in result.message
    assert emulator.requests == []


def test_an_untrusted_server_certificate_is_a_clear_tls_failure(emulator: DefenderEmulator) -> None:
    # Without the emulator's CA the system store is used, which does not trust its certificate.
    result = run_one(ACTION, asset_for(emulator, ca_bundle=None))

    assert not result.success
    assert "Traceback" not in result.message
    assert "Entra ID" in result.message
