"""Proxies, and which hosts and token scopes each cloud really uses, seen from the wire.

A local CONNECT proxy records every tunnel a client asks for. Tunnels to 127.0.0.1 reach the
emulator; tunnels to Microsoft's hosts are recorded and refused, so a test sees exactly which
real host the client tried without any traffic leaving the machine.
"""

from __future__ import annotations

import base64

import pytest

from mde_file_alerts import errors
from mde_file_alerts.account import Account
from mde_file_alerts.client import HashStatus
from mde_file_alerts.clouds import CLOUDS
from mde_file_alerts.retry import RetryPolicy
from tests.integration.conftest import emulator_account, emulator_client, sha1_with_alerts
from tests.integration.connect_proxy import ConnectProxy
from tests.support.emulator import DefenderEmulator
from tests.support.fake_clock import FakeClock

PROXY_USER = "svc-splunk"
PROXY_PASSWORD = "Pr0xy:pass@word/canary"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_credentials(proxy_url: str, user: str, password: str) -> dict[str, str]:
    return {"url": proxy_url, "username": user, "password": password}


def test_all_traffic_goes_through_the_proxy_with_its_credentials(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    with ConnectProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        account = emulator_account(emulator, proxy=with_credentials(proxy.url, PROXY_USER, PROXY_PASSWORD))
        client = emulator_client(emulator, clock, account=account)

        (outcome,) = list(client.lookup([sha1_with_alerts(emulator)]))

        assert outcome.status is HashStatus.FOUND
        tunnels = proxy.requests
    assert tunnels, "the client connected directly instead of through the proxy"
    assert {tunnel.target for tunnel in tunnels} == {f"127.0.0.1:{emulator.port}"}
    assert {tunnel.proxy_authorization for tunnel in tunnels} == {basic(PROXY_USER, PROXY_PASSWORD)}
    assert {tunnel.answered for tunnel in tunnels} == {200}
    # Discovery, token and API requests all arrived through those tunnels.
    assert [request.endpoint for request in emulator.requests] == ["discovery", "token", "api"]


def test_a_proxy_refusing_the_credentials_is_a_transport_error_without_the_password(
    emulator: DefenderEmulator, clock: FakeClock
) -> None:
    with ConnectProxy(credentials=(PROXY_USER, "the-right-one")) as proxy:
        account = emulator_account(emulator, proxy=with_credentials(proxy.url, PROXY_USER, PROXY_PASSWORD))
        client = emulator_client(emulator, clock, account=account)

        with pytest.raises(errors.TransportError) as caught:
            client.check_access()

        assert [tunnel.answered for tunnel in proxy.requests] == [407]
    shown = f"{caught.value} {caught.value!r} {caught.value.detail}"
    assert PROXY_PASSWORD not in shown
    assert "Pr0xy" not in shown
    assert emulator.requests == []


# --- clouds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_each_cloud_requests_its_scope_and_calls_its_api_host(
    emulator: DefenderEmulator, clock: FakeClock, cloud: str
) -> None:
    endpoints = CLOUDS[cloud]
    api_host = endpoints.api_host[len("https://") :]
    with ConnectProxy() as proxy:
        # Entra ID is the emulator; the API host stays the cloud's own, reached (and refused) at the proxy.
        account = emulator_account(emulator, cloud=cloud, api_host=None, proxy=proxy.url)
        client = emulator_client(emulator, clock, account=account, retry_policy=RetryPolicy(max_attempts=1))

        (outcome,) = list(client.lookup([sha1_with_alerts(emulator)]))

        targets = proxy.targets()
    (token_request,) = [request for request in emulator.requests if request.endpoint == "token"]
    assert token_request.form["scope"] == endpoints.scope
    assert targets[-1] == f"{api_host}:443"
    assert outcome.status is HashStatus.ERROR
    assert isinstance(outcome.error, errors.TransportError)
    assert outcome.error.url == f"{endpoints.api_host}/api/files/{outcome.sha1}/alerts"
    assert emulator.api_requests == []


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_each_cloud_signs_in_at_its_own_authority(
    emulator: DefenderEmulator, clock: FakeClock, cloud: str
) -> None:
    authority_host = CLOUDS[cloud].authority_host[len("https://") :]
    with ConnectProxy() as proxy:
        account = emulator_account(emulator, cloud=cloud, api_host=None, authority_host=None, proxy=proxy.url)

        with pytest.raises(errors.TransportError) as caught:
            emulator_client(emulator, clock, account=account).check_access()

        assert proxy.targets() == [f"{authority_host}:443"]
    assert caught.value.url == (
        f"https://{authority_host}/{emulator.tenant_id}/v2.0/.well-known/openid-configuration"
    )


def test_the_reference_table_hosts_and_scopes() -> None:
    """The values the two tests above exercise, against the reference table, for the main clouds."""
    expected = {
        "commercial": (
            "https://login.microsoftonline.com",
            "https://api.security.microsoft.com",
            "https://api.securitycenter.microsoft.com/.default",
        ),
        "eu": (
            "https://login.microsoftonline.com",
            "https://eu.api.security.microsoft.com",
            "https://api.securitycenter.microsoft.com/.default",
        ),
        "us_legacy": (
            "https://login.microsoftonline.com",
            "https://api-us.securitycenter.microsoft.com",
            "https://api.securitycenter.microsoft.com/.default",
        ),
        "gcc": (
            "https://login.microsoftonline.com",
            "https://api-gcc.securitycenter.microsoft.us",
            "https://api-gcc.securitycenter.microsoft.us/.default",
        ),
        "gcc_high": (
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us",
            "https://api-gov.securitycenter.microsoft.us/.default",
        ),
        "dod": (
            "https://login.microsoftonline.us",
            "https://api-gov.securitycenter.microsoft.us",
            "https://api-gov.securitycenter.microsoft.us/.default",
        ),
    }
    for cloud, (authority_host, api_host, scope) in expected.items():
        account = Account(name="x", tenant_id="contoso.onmicrosoft.com", client_id="c", cloud=cloud)
        assert (account.authority_url, account.api_base_url, account.scope) == (
            f"{authority_host}/contoso.onmicrosoft.com",
            api_host,
            scope,
        ), cloud
