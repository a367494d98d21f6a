"""Canaries: the client secret, the private key, the proxy password and every access token the
client used must never show up in logs (ours, msal's and urllib3's, at DEBUG), in exception
texts and reprs, or in outcomes — across successes, refreshes, failures and refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest

from mde_file_alerts import errors
from mde_file_alerts.client import HashOutcome
from tests.integration.conftest import emulator_account, emulator_client, sha1_with_alerts
from tests.integration.connect_proxy import ConnectProxy
from tests.support.emulator import DefenderEmulator, ErrorStatus, HtmlPage, MalformedJson
from tests.support.fake_clock import FakeClock

CANARY_SECRET = "Canary8Q~client-secret-7f3a9c1e5b2d4680aa"
CANARY_PROXY_PASSWORD = "Canary-proxy-password-41d9e6"


def shown(outcomes: Iterable[HashOutcome], raised: Iterable[BaseException]) -> str:
    """Every text a user or a log could see of these results and exceptions."""
    parts = []
    for outcome in outcomes:
        parts += [repr(outcome), outcome.message or ""]
        if outcome.error is not None:
            raised = [*raised, outcome.error]
    for error in raised:
        parts += [str(error), repr(error)]
        if isinstance(error, errors.MdeError):
            parts += [error.user_message, error.detail or "", error.url or ""]
    return "\n".join(parts)


def key_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM private key: any one of them in a log would be a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_no_secret_or_token_leaks_anywhere(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes: list[HashOutcome] = []
    raised: list[BaseException] = []
    with DefenderEmulator(clock=clock, client_secret=CANARY_SECRET) as emu, ConnectProxy() as proxy:
        proxy_settings = {"url": proxy.url, "username": "svc", "password": CANARY_PROXY_PASSWORD}
        hashes = [known.sha1 for known in emu.known_files()[:3]]

        # Client secret: found, refresh after expiry, server errors, junk bodies, throttling.
        secret_client = emulator_client(emu, clock, account=emulator_account(emu, proxy=proxy_settings))
        outcomes += secret_client.lookup(hashes)
        emu.expire_tokens()
        emu.inject(ErrorStatus(500), times=None, sha1=hashes[0])
        emu.inject(MalformedJson(), sha1=hashes[1])
        emu.inject(HtmlPage(401), sha1=hashes[2])
        outcomes += secret_client.lookup(hashes)
        emu.clear_faults()
        emu.inject(ErrorStatus(429, retry_after=900))
        outcomes += secret_client.lookup([sha1_with_alerts(emu)], timeout=60)

        # Certificate: success, then a refused one.
        certificate_client = emulator_client(emu, clock, account=emulator_account(emu, "certificate"))
        outcomes += certificate_client.lookup(hashes[:1])
        wrong_thumbprint = emulator_account(emu, "certificate", thumbprint="AB" * 20)
        with pytest.raises(errors.AuthenticationError) as refused_certificate:
            emulator_client(emu, clock, account=wrong_thumbprint).check_access()
        raised.append(refused_certificate.value)

        # A wrong secret that resembles the canary, and a token for the wrong audience.
        wrong_secret = emulator_account(emu, client_secret=CANARY_SECRET[:-4] + "zzzz")
        with pytest.raises(errors.AuthenticationError) as refused_secret:
            list(emulator_client(emu, clock, account=wrong_secret).lookup(hashes))
        raised.append(refused_secret.value)
        emu.api_scope = "https://api-gov.securitycenter.microsoft.us/.default"
        with pytest.raises(errors.Forbidden) as forbidden:
            list(emulator_client(emu, clock).lookup(hashes))
        raised.append(forbidden.value)

        tokens = {request.headers["authorization"].partition(" ")[2] for request in emu.api_requests}
        assertions = {
            request.form["client_assertion"] for request in emu.requests if "client_assertion" in request.form
        }
        private_key = emu.private_key_pem

    assert len(tokens) >= 3, "the scenario should have used several access tokens"
    assert assertions, "the certificate scenario should have signed client assertions"
    canaries = {
        "client secret": [CANARY_SECRET, CANARY_SECRET[:-4] + "zzzz"],
        "private key": key_lines(private_key),
        "proxy password": [CANARY_PROXY_PASSWORD],
        "access token": sorted(tokens),
        "client assertion": sorted(assertions),
    }
    logged = caplog.text + "\n".join(repr(record.args) for record in caplog.records)
    results = shown(outcomes, raised)
    captured_loggers = {record.name for record in caplog.records}
    assert {"mde_file_alerts.client", "urllib3.connectionpool", "msal.token_cache"} <= captured_loggers
    for kind, values in canaries.items():
        for value in values:
            assert value not in logged, f"a {kind} was logged"
            assert value not in results, f"a {kind} is in an outcome or exception"
