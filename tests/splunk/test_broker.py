"""The token broker as splunkd runs it: POSTs to the fake splunkd, which runs the app's handler.

Every test goes over HTTPS end to end: the caller's request, the broker's reads with the system
key (conf files, storage/passwords) and msal's token request to the emulated Entra ID.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from splunklib import binding

from mde_file_alerts.account import Account
from mde_file_alerts.splunk.broker import ASSUMED_LIFETIME_SECONDS
from mde_file_alerts.splunk.settings import BROKER_PATH, CAPABILITY
from mde_file_alerts.splunk.splunkd import Splunkd, SplunkdResponse
from mde_file_alerts.transport import Transport
from tests.splunk.conftest import ACCOUNT, ADMIN, ANALYST, PLAIN_USER, account_stanza, fake_splunkd
from tests.support.emulator import DefenderEmulator
from tests.support.splunkd import SYSTEM_USER, FakeSplunkd

SYSTEM_READS = ("configs/conf-", "storage/passwords")


def post_token(splunkd: FakeSplunkd, user: str = ANALYST, **form: str) -> SplunkdResponse:
    return Splunkd(splunkd.uri, splunkd.session_key_for(user)).post(BROKER_PATH, form)


def post_with_key(splunkd: FakeSplunkd, session_key: str, **form: str) -> SplunkdResponse:
    return Splunkd(splunkd.uri, session_key).post(BROKER_PATH, form)


def error_of(response: SplunkdResponse) -> dict[str, Any]:
    document = response.json()
    assert isinstance(document, dict) and "error" in document, response.body
    error: dict[str, Any] = document["error"]
    return error


def token_works(emu: DefenderEmulator, token: str) -> bool:
    """Whether Defender (emulated) accepts the token: one real API call with it."""
    account = Account.from_mapping(
        {
            "tenant_id": emu.tenant_id,
            "client_id": emu.client_id,
            "api_host": emu.base_url,
            "ca_bundle": emu.ca_bundle,
        },
        source="test",
        credentials_required=False,
    )
    sha1 = emu.known_files()[0].sha1
    return Transport(account).get_json(f"{emu.base_url}/api/files/{sha1}/alerts", token=token).status == 200


# --- issuing tokens ---------------------------------------------------------------------------


def test_an_analyst_gets_a_working_token_and_the_accounts_settings_but_no_secret(
    splunkd: FakeSplunkd, emulator: DefenderEmulator
) -> None:
    response = post_token(splunkd)

    assert response.status == 200
    document = response.json()
    assert token_works(emulator, document["access_token"])
    assert document["token_type"] == "Bearer"
    assert document["account"] == {
        "name": ACCOUNT,
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "auth_type": "secret",
        "cloud": "commercial",
        "api_host": emulator.base_url,
        "authority_host": emulator.base_url,
        "ca_bundle": emulator.ca_bundle,
        "proxy_url": None,
        "proxy_username": None,
        "timeout": 30.0,
        "connect_timeout": 10.0,
    }
    assert "proxy_password" not in document
    assert emulator.client_secret.encode() not in response.body


def test_an_opaque_token_is_announced_with_a_short_assumed_lifetime(splunkd: FakeSplunkd) -> None:
    # The emulator's tokens are not JWTs, so the broker cannot read their expiry and assumes little.
    before = time.time()
    expires_on = post_token(splunkd).json()["expires_on"]
    assert before + ASSUMED_LIFETIME_SECONDS - 1 <= expires_on <= time.time() + ASSUMED_LIFETIME_SECONDS + 1


def test_the_analyst_cannot_read_secrets_yet_gets_a_token_because_the_broker_reads_them(
    splunkd: FakeSplunkd,
) -> None:
    assert "list_storage_passwords" not in splunkd.capabilities_of(ANALYST)
    own_read = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)).get("storage/passwords")
    assert own_read.status == 403

    assert post_token(splunkd).status == 200
    secret_reads = splunkd.requests_to("storage/passwords")
    assert [request.user for request in secret_reads] == [ANALYST, SYSTEM_USER]


def test_admins_hold_the_capability_through_the_apps_authorize_conf(splunkd: FakeSplunkd) -> None:
    assert CAPABILITY in splunkd.capabilities_of(ADMIN)
    assert post_token(splunkd, ADMIN).status == 200


def test_repeat_requests_are_served_from_msals_cache(
    splunkd: FakeSplunkd, emulator: DefenderEmulator
) -> None:
    tokens = {post_token(splunkd).json()["access_token"] for _ in range(3)}

    assert len(tokens) == 1
    assert emulator.token_requests == 1


def test_force_refresh_asks_entra_id_again(splunkd: FakeSplunkd, emulator: DefenderEmulator) -> None:
    first = post_token(splunkd).json()["access_token"]
    refreshed = post_token(splunkd, force_refresh="1").json()["access_token"]

    assert refreshed != first
    assert emulator.token_requests == 2
    assert token_works(emulator, refreshed)


def test_a_changed_secret_takes_effect_without_a_restart(
    splunkd: FakeSplunkd, emulator: DefenderEmulator
) -> None:
    assert post_token(splunkd).status == 200
    splunkd.set_password(ACCOUNT, "not-the-secret")

    response = post_token(splunkd)

    assert response.status == 502
    assert error_of(response)["aadsts_code"] == "AADSTS7000215"


def test_a_json_body_works_like_a_form(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator,
        accounts={"lab": account_stanza(emulator), ACCOUNT: account_stanza(emulator)},
        passwords={"lab": emulator.client_secret, ACCOUNT: emulator.client_secret},
    ) as splunkd:
        context = binding.Context(
            host="127.0.0.1",
            port=int(splunkd.uri.rsplit(":", 1)[1]),
            token=splunkd.session_key_for(ANALYST),
        )
        response = context.post(
            f"/servicesNS/nobody/TA-mde-file-alerts/{BROKER_PATH}",
            headers=[("Content-Type", "application/json")],
            body=json.dumps({"account": "lab", "force_refresh": False}),
        )
        assert json.loads(response.body.read())["account"]["name"] == "lab"


def test_a_certificate_account_signs_in_with_the_stored_private_key(emulator: DefenderEmulator) -> None:
    stanza = account_stanza(emulator, auth_type="certificate", thumbprint=emulator.thumbprint)
    with fake_splunkd(
        emulator, accounts={ACCOUNT: stanza}, passwords={ACCOUNT: emulator.private_key_pem}
    ) as splunkd:
        response = post_token(splunkd)

    assert response.status == 200
    assert response.json()["account"]["auth_type"] == "certificate"
    assert token_works(emulator, response.json()["access_token"])
    token_forms = [request.form for request in emulator.requests if request.endpoint == "token"]
    assert "client_assertion" in token_forms[0]
    assert b"PRIVATE KEY" not in response.body


# --- which account --------------------------------------------------------------------------


def test_the_only_account_is_the_default(splunkd: FakeSplunkd) -> None:
    assert post_token(splunkd).json()["account"]["name"] == ACCOUNT


def test_the_configured_default_account_is_used_when_none_is_named(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator,
        accounts={"lab": account_stanza(emulator), ACCOUNT: account_stanza(emulator)},
        passwords={"lab": emulator.client_secret, ACCOUNT: emulator.client_secret},
        settings={"general": {"default_account": "lab"}},
    ) as splunkd:
        assert post_token(splunkd).json()["account"]["name"] == "lab"
        assert post_token(splunkd, account=ACCOUNT).json()["account"]["name"] == ACCOUNT


def test_several_accounts_and_no_default_is_refused_with_their_names(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator, accounts={"lab": account_stanza(emulator), ACCOUNT: account_stanza(emulator)}
    ) as splunkd:
        response = post_token(splunkd)

    assert response.status == 404
    error = error_of(response)
    assert error["code"] == "account_not_found"
    assert error["configured_accounts"] == ["lab", ACCOUNT]
    assert "account=<name>" in error["message"] and "default_account" in error["message"]


def test_an_unknown_account_is_refused_with_the_configured_names(splunkd: FakeSplunkd) -> None:
    response = post_token(splunkd, account="staging")

    assert response.status == 404
    error = error_of(response)
    assert error["message"] == (
        f"No Defender for Endpoint account named 'staging' is configured; configured accounts: {ACCOUNT}."
    )
    assert error["configured_accounts"] == [ACCOUNT]
    assert not splunkd.requests_to("storage/passwords"), "no secret is read for an unknown account"


def test_no_account_at_all_says_how_to_add_one(emulator: DefenderEmulator) -> None:
    with fake_splunkd(emulator, accounts={}, passwords={}) as splunkd:
        response = post_token(splunkd)

    assert response.status == 404
    assert "No Defender for Endpoint account is configured" in error_of(response)["message"]
    assert error_of(response)["configured_accounts"] == []


def test_a_disabled_account_is_refused(emulator: DefenderEmulator) -> None:
    with fake_splunkd(emulator, accounts={ACCOUNT: account_stanza(emulator, disabled="1")}) as splunkd:
        response = post_token(splunkd, account=ACCOUNT)

    assert response.status == 409
    assert error_of(response)["code"] == "account_disabled"


def test_an_account_without_its_secret_names_where_to_store_it(emulator: DefenderEmulator) -> None:
    with fake_splunkd(emulator, passwords={}) as splunkd:
        response = post_token(splunkd)

    assert response.status == 500
    error = error_of(response)
    assert error["code"] == "configuration_error"
    assert "realm 'TA-mde-file-alerts'" in error["message"] and f"user name '{ACCOUNT}'" in error["message"]


def test_a_wrong_secret_is_entras_refusal_with_its_aadsts_code(emulator: DefenderEmulator) -> None:
    with fake_splunkd(emulator, passwords={ACCOUNT: "wrong-secret-value"}) as splunkd:
        response = post_token(splunkd)

    assert response.status == 502
    error = error_of(response)
    assert error["code"] == "authentication_failed"
    assert error["aadsts_code"] == "AADSTS7000215"
    assert error["correlation_id"]
    assert "Invalid client secret provided" in error["message"]
    assert b"wrong-secret-value" not in response.body


def test_an_invalid_account_stanza_is_reported_by_key(emulator: DefenderEmulator) -> None:
    with fake_splunkd(emulator, accounts={ACCOUNT: account_stanza(emulator, tennant_id="typo")}) as splunkd:
        response = post_token(splunkd)

    assert response.status == 500
    assert "unknown key 'tennant_id'" in error_of(response)["message"]


# --- who may ask ------------------------------------------------------------------------------


def test_splunkd_itself_refuses_users_without_the_capability(splunkd: FakeSplunkd) -> None:
    response = post_token(splunkd, PLAIN_USER)

    assert response.status == 403
    assert response.messages == [
        f"You (user={PLAIN_USER}) do not have permission to perform this operation "
        f"(requires capability: {CAPABILITY})."
    ]
    assert not any(request.user == SYSTEM_USER for request in splunkd.requests), "the handler never ran"


def test_the_broker_checks_the_capability_again_if_restmap_stopped_enforcing_it(
    emulator: DefenderEmulator,
) -> None:
    with fake_splunkd(emulator, restmap={"script:mde_file_alerts_token": {"capability": ""}}) as splunkd:
        response = post_token(splunkd, PLAIN_USER)
        reads = [
            request for request in splunkd.requests if any(part in request.path for part in SYSTEM_READS)
        ]

    assert response.status == 403
    assert error_of(response)["code"] == "capability_missing"
    assert "'mde_file_alerts_analyst'" in error_of(response)["message"]
    assert reads == [], "nothing is read for a caller without the capability"


def test_without_pass_system_auth_the_broker_says_what_to_fix(emulator: DefenderEmulator) -> None:
    with fake_splunkd(
        emulator, restmap={"script:mde_file_alerts_token": {"passSystemAuth": "false"}}
    ) as splunkd:
        response = post_token(splunkd)

    assert response.status == 500
    assert "passSystemAuth = true" in error_of(response)["message"]


# --- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"force_refresh": "maybe"}, "force_refresh must be 0 or 1, not 'maybe'."),
        ({"acount": ACCOUNT}, "Unknown parameter 'acount'; the token broker accepts account, force_refresh."),
        ({"account": "bad]name"}, "The account name is not a valid conf stanza name."),
    ],
)
def test_bad_input_is_a_400_with_one_sentence(
    splunkd: FakeSplunkd, form: dict[str, str], expected: str
) -> None:
    response = post_token(splunkd, **form)

    assert response.status == 400
    assert error_of(response) == {"code": "bad_request", "message": expected}


def test_only_post_is_answered(splunkd: FakeSplunkd) -> None:
    response = Splunkd(splunkd.uri, splunkd.session_key_for(ANALYST)).get(BROKER_PATH)

    assert response.status == 405
    assert error_of(response)["code"] == "method_not_allowed"


# --- secrets stay secret ----------------------------------------------------------------------


def test_no_secret_reaches_a_response_or_the_log(emulator: DefenderEmulator, app_log: Path) -> None:
    proxy_canary = "proxy-canary-5Vq8"
    with fake_splunkd(
        emulator,
        accounts={
            ACCOUNT: account_stanza(emulator),
            "cert": account_stanza(emulator, auth_type="certificate", thumbprint=emulator.thumbprint),
            "wrong": account_stanza(emulator),
            "proxied": account_stanza(emulator, proxy_url="http://127.0.0.1:9", proxy_username="svc"),
        },
        passwords={
            ACCOUNT: emulator.client_secret,
            "cert": emulator.private_key_pem,
            "wrong": emulator.client_secret[::-1],
            "proxied": emulator.client_secret,
            "proxied#proxy": proxy_canary,
        },
        settings={"logging": {"log_level": "DEBUG"}},
    ) as splunkd:
        user_key = splunkd.session_key_for(ANALYST)
        responses = [
            post_with_key(splunkd, user_key, account=name)
            for name in (ACCOUNT, "cert", "wrong", "proxied", "missing")
        ]
        responses.append(post_with_key(splunkd, user_key, account=ACCOUNT, force_refresh="1"))
        handler_errors = list(splunkd.handler_errors)

    assert [response.status for response in responses] == [200, 200, 502, 503, 404, 200]
    assert "Could not reach Entra ID" in error_of(responses[3])["message"], "the proxy on port 9 is closed"
    access_tokens = [response.json()["access_token"] for response in responses if response.status == 200]
    key_body = "".join(emulator.private_key_pem.splitlines()[1:-1])
    secrets = [emulator.client_secret, emulator.client_secret[::-1], key_body, proxy_canary]
    log = app_log.read_text(encoding="utf-8")
    assert "token issued user=ana account=prod" in log
    for secret in secrets:
        for response in responses:
            assert secret.encode() not in response.body
        assert secret not in log
    for token in [*access_tokens, user_key, splunkd.system_key]:
        assert token not in log
    assert handler_errors == []
