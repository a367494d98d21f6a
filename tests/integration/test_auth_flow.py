"""Signing in through msal against the emulated Entra ID, and what the API says about the token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mde_file_alerts import errors
from mde_file_alerts.auth import CRYPTOGRAPHY_MISSING
from mde_file_alerts.client import DefenderClient, HashStatus
from tests.integration.conftest import emulator_account, emulator_client, sha1_with_alerts
from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock

OTHER_TENANT = "9d0c8b7a-6f5e-4d3c-8b2a-1f0e9d8c7b6a"


def test_one_token_serves_many_lookups(emulator: DefenderEmulator, client: DefenderClient) -> None:
    hashes = [known.sha1 for known in emulator.known_files()[:5]]

    outcomes = list(client.lookup(hashes))

    assert {outcome.status for outcome in outcomes} == {HashStatus.FOUND}
    assert emulator.token_requests == 1
    endpoints = [request.endpoint for request in emulator.requests]
    assert endpoints[:2] == ["discovery", "token"]
    assert endpoints[2:] == ["api"] * 5


def test_the_token_request_is_client_credentials_for_the_defender_scope(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    client.check_access()

    (token_request,) = [request for request in emulator.requests if request.endpoint == "token"]
    form = token_request.form
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == emulator.client_id
    assert form["scope"] == "https://api.securitycenter.microsoft.com/.default"
    assert token_request.headers["user-agent"].startswith("MdePartner-TAmde-TA-mde-file-alerts/")


def test_an_expired_token_gets_exactly_one_refresh(
    emulator: DefenderEmulator, client: DefenderClient, clock: FakeClock
) -> None:
    hashes = [known.sha1 for known in emulator.known_files()[:4]]
    client.check_access()
    emulator.expire_tokens()

    outcomes = list(client.lookup(hashes))

    assert [outcome.status for outcome in outcomes] == [HashStatus.FOUND] * 4
    assert emulator.token_requests == 2
    first_status = emulator.api_requests[0].status
    assert first_status == 401
    assert outcomes[0].calls == 2
    assert clock.sleeps == []


def test_a_token_rejected_even_after_refresh_is_an_error(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    emulator.inject(401, times=2)

    (outcome,) = list(client.lookup([sha1_with_alerts(emulator)]))

    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.Unauthorized)
    assert emulator.token_requests == 2
    assert [request.status for request in emulator.api_requests] == [401, 401]


def test_a_wrong_secret_is_a_fatal_authentication_error_with_the_aadsts_code(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    client = emulator_client(
        emulator, clock, account=emulator_account(emulator, client_secret="not-the-secret")
    )

    with pytest.raises(errors.AuthenticationError) as caught:
        list(client.lookup([sha1_with_alerts(emulator)]))

    error = caught.value
    assert error.code == "AADSTS7000215"
    assert error.fatal
    assert "Invalid client secret provided" in error.user_message
    assert error.correlation_id
    assert emulator.api_requests == []


def test_check_access_reports_a_wrong_secret_before_any_lookup(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    client = emulator_client(
        emulator, clock, account=emulator_account(emulator, client_secret="not-the-secret")
    )

    with pytest.raises(errors.AuthenticationError, match="Invalid client secret"):
        client.check_access()


def test_an_unknown_client_id_names_the_application(emulator: DefenderEmulator, clock: FakeClock) -> None:
    account = emulator_account(emulator, client_id="0f0f0f0f-1e1e-2d2d-3c3c-4b4b4b4b4b4b")

    with pytest.raises(errors.AuthenticationError) as caught:
        emulator_client(emulator, clock, account=account).check_access()

    assert caught.value.code == "AADSTS700016"


def test_an_unknown_tenant_fails_at_first_use_with_our_error(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    account = emulator_account(emulator, tenant_id=OTHER_TENANT)
    # Building the client contacts nobody; msal's discovery happens at the first token request.
    client = emulator_client(emulator, clock, account=account)
    assert emulator.requests == []

    with pytest.raises(errors.AuthenticationError) as caught:
        client.check_access()

    assert OTHER_TENANT in caught.value.message
    assert caught.value.code == "AADSTS90002"
    assert [request.endpoint for request in emulator.requests] == ["discovery"]


def test_a_token_for_the_wrong_audience_is_forbidden_and_stops_the_lookup(
    emulator: DefenderEmulator, client: DefenderClient
) -> None:
    emulator.api_scope = "https://api-gov.securitycenter.microsoft.us/.default"
    hashes = [known.sha1 for known in emulator.known_files()[:6]]

    with pytest.raises(errors.Forbidden) as caught:
        list(client.lookup(hashes))

    assert caught.value.status == 403
    assert caught.value.fatal
    assert "Alert.Read.All" in caught.value.user_message
    # Workers stop issuing calls once the account is known not to work.
    assert len(emulator.api_requests) <= 4


def test_certificate_authentication_end_to_end(emulator: DefenderEmulator, clock: FakeClock) -> None:
    client = emulator_client(emulator, clock, account=emulator_account(emulator, "certificate"))
    sha1 = sha1_with_alerts(emulator)

    (outcome,) = list(client.lookup([sha1]))

    assert outcome.status is HashStatus.FOUND
    (token_request,) = [request for request in emulator.requests if request.endpoint == "token"]
    assert (
        token_request.form["client_assertion_type"]
        == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert "client_secret" not in token_request.form


def test_an_inline_private_key_works_like_a_key_file(emulator: DefenderEmulator, clock: FakeClock) -> None:
    account = emulator_account(
        emulator, "certificate", certificate_path=None, private_key=emulator.private_key_pem
    )

    emulator_client(emulator, clock, account=account).check_access()

    assert emulator.token_requests == 1


def test_a_certificate_with_the_wrong_thumbprint_is_refused_by_entra_id(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    account = emulator_account(emulator, "certificate", thumbprint="AB" * 20)

    with pytest.raises(errors.AuthenticationError) as caught:
        emulator_client(emulator, clock, account=account).check_access()

    assert caught.value.code is not None and caught.value.code.startswith("AADSTS")


def test_tls_is_verified_so_an_untrusted_server_is_never_talked_to(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    # Without the emulator's CA the certificate cannot be verified; the client must refuse.
    account = emulator_account(emulator, ca_bundle=None)

    with pytest.raises(errors.TransportError) as caught:
        emulator_client(emulator, clock, account=account).check_access()

    assert "SSLError" in (caught.value.detail or "")
    assert emulator.requests == []


WITHOUT_CRYPTOGRAPHY = """
import sys
sys.modules["cryptography"] = None  # as on a Splunk whose Python lacks the package
from mde_file_alerts import errors
from mde_file_alerts.account import load_account_file
from mde_file_alerts.client import DefenderClient
for path in sys.argv[1:]:
    try:
        DefenderClient(load_account_file(path)).check_access()
        print("signed in")
    except errors.MdeError as error:
        print(type(error).__name__, error.user_message)
"""


def test_without_cryptography_certificates_fail_clearly_and_secrets_still_work(
    emulator: DefenderEmulator, tmp_path: Path
) -> None:
    certificate_file = emulator.write_account_file(tmp_path / "certificate.json", "certificate")
    secret_file = emulator.write_account_file(tmp_path / "secret.json")
    root = Path(__file__).resolve().parents[2]

    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_CRYPTOGRAPHY, str(certificate_file), str(secret_file)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "lib"), str(root)])},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert completed.stdout.splitlines() == [f"ConfigurationError {CRYPTOGRAPHY_MISSING}", "signed in"]
    assert emulator.token_requests == 1
