"""msal itself (the vendored copy in lib/) gets tokens from the emulator, both ways it can."""

from __future__ import annotations

import msal
import requests

from tests.support.emulator import DEFENDER_SCOPE, DefenderEmulator


def application(
    emulator: DefenderEmulator, session: requests.Session, credential: object
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        emulator.client_id,
        client_credential=credential,
        authority=emulator.authority,
        instance_discovery=False,
        http_client=session,
    )


def test_msal_gets_a_token_with_the_client_secret(
    emulator: DefenderEmulator, session: requests.Session
) -> None:
    result = application(emulator, session, emulator.client_secret).acquire_token_for_client([DEFENDER_SCOPE])
    assert "access_token" in result, result
    assert [entry.endpoint for entry in emulator.requests] == ["discovery", "token"]
    assert emulator.requests[-1].form["client_secret"] == emulator.client_secret


def test_msal_gets_a_token_with_the_certificate(
    emulator: DefenderEmulator, session: requests.Session
) -> None:
    credential = {"private_key": emulator.private_key_pem, "thumbprint": emulator.thumbprint}
    result = application(emulator, session, credential).acquire_token_for_client([DEFENDER_SCOPE])
    assert "access_token" in result, result
    form = emulator.requests[-1].form
    assert "client_secret" not in form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_msal_reports_a_wrong_secret_as_an_aadsts_error_dict(
    emulator: DefenderEmulator, session: requests.Session
) -> None:
    result = application(emulator, session, "wrong-secret").acquire_token_for_client([DEFENDER_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215")


def test_msal_serves_a_second_request_from_its_cache(
    emulator: DefenderEmulator, session: requests.Session
) -> None:
    app = application(emulator, session, emulator.client_secret)
    first = app.acquire_token_for_client([DEFENDER_SCOPE])
    second = app.acquire_token_for_client([DEFENDER_SCOPE])
    assert first["access_token"] == second["access_token"]
    assert emulator.token_requests == 1
