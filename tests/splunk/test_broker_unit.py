"""The broker's own logic with a stand-in token provider (splunkd is still the HTTPS fake)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mde_file_alerts.account import Account, ProxySettings, Secret
from mde_file_alerts.errors import TransportError
from mde_file_alerts.splunk.broker import (
    ProviderRegistry,
    TokenBroker,
    account_fingerprint,
    token_expiry,
)
from tests.splunk.conftest import ACCOUNT, ANALYST, USERS, account_stanza
from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock
from tests.support.splunkd import FakeSplunkd


class StubProvider:
    def __init__(self, account: Account, tokens: list[Any]) -> None:
        self.account = account
        self.tokens = tokens
        self.calls: list[bool] = []

    def token(self, *, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        token = self.tokens.pop(0)
        if isinstance(token, BaseException):
            raise token
        return str(token)


def jwt_with(claims: dict[str, Any]) -> str:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.signature"


def request_document(splunkd: FakeSplunkd, user: str = ANALYST, **form: str) -> dict[str, Any]:
    """What splunkd would hand the handler (see tests/support/splunkd.py for the full form)."""
    return {
        "method": "POST",
        "server": {"rest_uri": splunkd.uri},
        "session": {"user": user, "authtoken": splunkd.session_key_for(user)},
        "system_authtoken": splunkd.system_key,
        "query": [["output_mode", "json"]],
        "form": [[key, value] for key, value in form.items()],
        "rest_path": "/mde_file_alerts/token",
    }


def account(**overrides: Any) -> Account:
    settings: dict[str, Any] = {
        "name": "unit",
        "tenant_id": "11111111-2222-3333-4444-555555555555",
        "client_id": "66666666-7777-8888-9999-000000000000",
        "client_secret": Secret("first-secret"),
    }
    settings.update(overrides)
    return Account(**settings)


# --- the payload ------------------------------------------------------------------------------


def test_a_configured_proxy_password_travels_with_the_token_and_nowhere_else(
    emulator: DefenderEmulator, clock: FakeClock, app_log: Path
) -> None:
    stanza = account_stanza(emulator, proxy_url="http://proxy.example.test:3128", proxy_username="svc")
    providers: list[StubProvider] = []

    def factory(account: Account) -> StubProvider:
        providers.append(StubProvider(account, ["opaque-token"]))
        return providers[-1]

    passwords = {ACCOUNT: emulator.client_secret, f"{ACCOUNT}#proxy": "proxy-pass-canary"}
    with FakeSplunkd(users=USERS, accounts={ACCOUNT: stanza}, passwords=passwords) as splunkd:
        reply = TokenBroker(provider_factory=factory, clock=clock).handle(request_document(splunkd))

    payload = reply["payload"]
    assert reply["status"] == 200
    assert payload["proxy_password"] == "proxy-pass-canary"
    assert payload["account"]["proxy_url"] == "http://proxy.example.test:3128"
    assert payload["account"]["proxy_username"] == "svc"
    assert providers[0].account.proxy == ProxySettings(
        "http://proxy.example.test:3128", "svc", Secret("proxy-pass-canary")
    )
    assert "proxy-pass-canary" not in app_log.read_text(encoding="utf-8")


def test_a_jwts_own_expiry_is_announced(emulator: DefenderEmulator, clock: FakeClock) -> None:
    token = jwt_with({"aud": "https://api.securitycenter.microsoft.com", "exp": 1_700_003_599})
    with FakeSplunkd(
        users=USERS, accounts={ACCOUNT: account_stanza(emulator)}, passwords={ACCOUNT: emulator.client_secret}
    ) as splunkd:
        reply = TokenBroker(
            provider_factory=lambda account: StubProvider(account, [token]), clock=clock
        ).handle(request_document(splunkd))

    assert reply["payload"]["expires_on"] == 1_700_003_599


def test_entra_being_unreachable_is_a_503(emulator: DefenderEmulator, clock: FakeClock) -> None:
    outage = TransportError("Could not reach Entra ID at https://login.example.test.")
    with FakeSplunkd(
        users=USERS, accounts={ACCOUNT: account_stanza(emulator)}, passwords={ACCOUNT: emulator.client_secret}
    ) as splunkd:
        reply = TokenBroker(
            provider_factory=lambda account: StubProvider(account, [outage]), clock=clock
        ).handle(request_document(splunkd))

    assert reply == {
        "status": 503,
        "payload": {
            "error": {
                "code": "entra_unavailable",
                "message": "Could not reach Entra ID at https://login.example.test.",
            }
        },
    }


def test_an_unexpected_failure_is_one_sentence_for_the_caller_and_a_traceback_in_the_log(
    emulator: DefenderEmulator, clock: FakeClock, app_log: Path
) -> None:
    with FakeSplunkd(
        users=USERS, accounts={ACCOUNT: account_stanza(emulator)}, passwords={ACCOUNT: emulator.client_secret}
    ) as splunkd:
        broker = TokenBroker(
            provider_factory=lambda account: StubProvider(account, [RuntimeError("boom")]), clock=clock
        )
        reply = broker.handle(request_document(splunkd))

    assert reply["status"] == 500
    assert reply["payload"]["error"]["code"] == "internal_error"
    assert "ta_mde_file_alerts.log" in reply["payload"]["error"]["message"]
    log = app_log.read_text(encoding="utf-8")
    assert "RuntimeError: boom" in log
    assert emulator.client_secret not in log


@pytest.mark.parametrize("document", ["not json", b"[1, 2]", "{"])
def test_a_request_that_is_not_a_json_object_is_a_400(document: str | bytes) -> None:
    reply = TokenBroker(provider_factory=lambda account: StubProvider(account, [])).handle(document)

    assert reply["status"] == 400


def test_a_request_without_a_session_is_a_401(splunkd: FakeSplunkd) -> None:
    document = request_document(splunkd)
    del document["session"]

    reply = TokenBroker(provider_factory=lambda account: StubProvider(account, [])).handle(
        json.dumps(document)
    )

    assert reply["status"] == 401


def test_a_parameter_given_twice_must_agree(splunkd: FakeSplunkd) -> None:
    document = request_document(splunkd, account=ACCOUNT)
    document["query"].append(["account", "lab"])

    reply = TokenBroker(provider_factory=lambda account: StubProvider(account, [])).handle(document)

    assert (
        reply["payload"]["error"]["message"]
        == "The parameter 'account' is given twice with different values."
    )


# --- providers, fingerprints and expiry -----------------------------------------------------


def test_one_provider_per_account_until_its_settings_or_secret_change() -> None:
    built: list[Account] = []

    def factory(account: Account) -> StubProvider:
        built.append(account)
        return StubProvider(account, [])

    registry = ProviderRegistry(factory)
    first = registry.provider_for(account())
    assert registry.provider_for(account()) is first
    assert registry.provider_for(account(name="other")) is not first
    assert registry.provider_for(account(client_secret=Secret("second-secret"))) is not first
    assert registry.provider_for(account(timeout=5.0)) is not first
    assert len(built) == 4


def test_a_fingerprint_covers_secrets_but_does_not_contain_them() -> None:
    base = account(proxy=ProxySettings("http://proxy:3128", "svc", Secret("p1")))
    changed_proxy_password = replace(base, proxy=ProxySettings("http://proxy:3128", "svc", Secret("p2")))

    assert account_fingerprint(base) == account_fingerprint(replace(base))
    assert account_fingerprint(base) != account_fingerprint(changed_proxy_password)
    assert "first-secret" not in account_fingerprint(base)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (jwt_with({"exp": 1_700_000_000}), 1_700_000_000),
        (jwt_with({"exp": 1_700_000_000.5}), 1_700_000_000),
        (jwt_with({"nbf": 1}), None),
        (jwt_with({"exp": True}), None),
        ("opaque-token", None),
        ("a.!!!.c", None),
    ],
)
def test_token_expiry_reads_only_a_jwts_exp_claim(token: str, expected: int | None) -> None:
    assert token_expiry(token) == expected
