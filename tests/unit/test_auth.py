"""MsalTokenProvider with msal's application object replaced by a recording fake.

What is checked here is our side of the contract with msal: how the application is built (once,
lazily, with our Session and settings), which credential it gets, and how msal's results and
exceptions become our errors. Real token exchanges are covered by the integration tests.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import jwt.algorithms
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from msal.exceptions import MsalServiceError

from mde_file_alerts import auth, errors
from mde_file_alerts.account import Account, Secret
from mde_file_alerts.auth import CRYPTOGRAPHY_MISSING, MsalTokenProvider

SECRET = "unit-Client~Secret-canary"
THUMBPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
TENANT = "11111111-2222-3333-4444-555555555555"
WRONG_SECRET_RESULT = {
    "error": "invalid_client",
    "error_description": (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is "
        "the client secret value, not the client secret ID.\r\nTrace ID: 5d1c\r\nCorrelation ID: "
        "corr-9\r\nTimestamp: 2025-01-01 00:00:00Z"
    ),
    "error_codes": [7000215],
    "correlation_id": "corr-9",
}


class FakeApplication:
    """Records how msal's ConfidentialClientApplication was built and used."""

    DISABLE_MSAL_FORCE_REGION = False  # msal's own value of this constant
    built: ClassVar[list[FakeApplication]] = []
    construction_error: ClassVar[BaseException | None] = None
    results: ClassVar[list[Any]] = []

    def __init__(self, client_id: str, **kwargs: Any) -> None:
        if FakeApplication.construction_error is not None:
            raise FakeApplication.construction_error
        self.client_id = client_id
        self.kwargs = kwargs
        self.calls: list[str] = []
        FakeApplication.built.append(self)

    def acquire_token_for_client(self, scopes: list[str]) -> Any:
        self.calls.append(f"acquire {' '.join(scopes)}")
        result = FakeApplication.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    def remove_tokens_for_client(self) -> None:
        self.calls.append("remove")


@pytest.fixture(autouse=True)
def fake_msal(monkeypatch: pytest.MonkeyPatch) -> type[FakeApplication]:
    FakeApplication.built = []
    FakeApplication.construction_error = None
    FakeApplication.results = []
    monkeypatch.setattr(auth.msal, "ConfidentialClientApplication", FakeApplication)
    return FakeApplication


def make_account(**overrides: Any) -> Account:
    settings: dict[str, Any] = {
        "name": "unit",
        "tenant_id": TENANT,
        "client_id": "66666666-7777-8888-9999-000000000000",
        "client_secret": Secret(SECRET),
        "authority_host": "https://login.example.test:8443",
        "timeout": 31.0,
        "connect_timeout": 7.0,
    }
    settings.update(overrides)
    return Account(**settings)


def provider(**overrides: Any) -> MsalTokenProvider:
    return MsalTokenProvider(make_account(**overrides), requests.Session())


def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# --- building the application -----------------------------------------------------------------


def test_the_application_is_built_on_first_use_and_only_once() -> None:
    tokens = provider()
    FakeApplication.results = [{"access_token": "t1"}, {"access_token": "t1"}]

    assert FakeApplication.built == []
    assert tokens.token() == "t1"
    assert tokens.token() == "t1"
    assert len(FakeApplication.built) == 1


def test_the_application_gets_the_authority_our_session_and_no_discovery_or_region() -> None:
    session = requests.Session()
    tokens = MsalTokenProvider(make_account(), session)
    FakeApplication.results = [{"access_token": "t1"}]

    tokens.token()

    (application,) = FakeApplication.built
    assert application.client_id == "66666666-7777-8888-9999-000000000000"
    assert application.kwargs["authority"] == f"https://login.example.test:8443/{TENANT}"
    assert application.kwargs["client_credential"] == SECRET
    assert application.kwargs["instance_discovery"] is False
    assert application.kwargs["azure_region"] is False
    assert application.kwargs["http_client"]._session is session
    assert application.calls == ["acquire https://api.securitycenter.microsoft.com/.default"]


def test_msal_requests_go_through_the_session_with_the_account_timeouts() -> None:
    recorded: list[tuple[str, str, dict[str, Any]]] = []

    class RecordingSession(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            recorded.append((method, url, kwargs))
            return requests.Response()

    tokens = MsalTokenProvider(make_account(), RecordingSession())
    FakeApplication.results = [{"access_token": "t1"}]
    tokens.token()
    http_client = FakeApplication.built[0].kwargs["http_client"]

    http_client.get("https://login.example.test/x", headers={"Accept": "application/json"})
    http_client.post("https://login.example.test/y", data={"grant_type": "client_credentials"})

    assert [(method, kwargs["timeout"], kwargs["allow_redirects"]) for method, _, kwargs in recorded] == [
        ("GET", (7.0, 31.0), False),
        ("POST", (7.0, 31.0), False),
    ]


@pytest.mark.parametrize(
    ("failure", "error_class", "message"),
    [
        (requests.ConnectionError("refused"), errors.TransportError, "Could not reach Entra ID at"),
        (
            ValueError("Unable to get authority configuration for https://login.example.test:8443/x"),
            errors.AuthenticationError,
            f"does not know the tenant '{TENANT}'",
        ),
        (
            MsalServiceError("HTTP Error: 503", error=None, error_description=None),
            errors.TransportError,
            "could not serve the tenant's OpenID configuration",
        ),
    ],
)
def test_failures_while_building_become_our_errors(
    failure: BaseException, error_class: type[errors.MdeError], message: str
) -> None:
    FakeApplication.construction_error = failure

    with pytest.raises(error_class) as caught:
        provider().token()

    assert message in caught.value.message
    assert (
        caught.value.url == f"https://login.example.test:8443/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert caught.value.__cause__ is None


def test_an_aadsts_code_in_the_discovery_failure_is_kept() -> None:
    try:
        raise ValueError(
            'OIDC Discovery failed. HTTP status: 400, Error: {"error_description": "AADSTS90002: ..."}'
        )
    except ValueError as original:
        try:
            raise ValueError("Unable to get authority configuration") from None
        except ValueError as rewrapped:
            rewrapped.__context__ = original
            FakeApplication.construction_error = rewrapped

    with pytest.raises(errors.AuthenticationError) as caught:
        provider().token()

    assert caught.value.code == "AADSTS90002"


# --- credentials ------------------------------------------------------------------------------


def test_a_certificate_credential_passes_the_private_key_block_and_thumbprint(tmp_path: Path) -> None:
    key = rsa_pem()
    pem_file = tmp_path / "app.pem"
    pem_file.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" + key)
    tokens = provider(client_secret=None, certificate_path=str(pem_file), thumbprint=THUMBPRINT)
    FakeApplication.results = [{"access_token": "t1"}]

    tokens.token()

    credential = FakeApplication.built[0].kwargs["client_credential"]
    assert credential == {"private_key": key.strip(), "thumbprint": THUMBPRINT}


def test_an_inline_private_key_is_used_as_is() -> None:
    key = rsa_pem()
    tokens = provider(client_secret=None, private_key=Secret(key), thumbprint=THUMBPRINT)
    FakeApplication.results = [{"access_token": "t1"}]

    tokens.token()

    assert FakeApplication.built[0].kwargs["client_credential"]["private_key"] == key.strip()


def test_certificates_need_cryptography_and_say_so_before_msal_is_involved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jwt.algorithms, "has_crypto", False)
    tokens = provider(client_secret=None, private_key=Secret(rsa_pem()), thumbprint=THUMBPRINT)

    with pytest.raises(errors.ConfigurationError) as caught:
        tokens.token()

    assert caught.value.message == CRYPTOGRAPHY_MISSING
    assert FakeApplication.built == []


def test_secret_accounts_do_not_need_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jwt.algorithms, "has_crypto", False)
    FakeApplication.results = [{"access_token": "t1"}]

    assert provider().token() == "t1"


def unusable_keys() -> list[tuple[str, str]]:
    encrypted = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        )
        .decode()
    )
    elliptic = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    damaged = "-----BEGIN PRIVATE KEY-----\nAAAAnotakey\n-----END PRIVATE KEY-----\n"
    return [
        ("certificate only", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        ("encrypted", encrypted),
        ("elliptic curve", elliptic),
        ("damaged", damaged),
    ]


@pytest.mark.parametrize(("kind", "pem"), unusable_keys(), ids=[kind for kind, _ in unusable_keys()])
def test_unusable_private_keys_are_configuration_errors_without_the_key(kind: str, pem: str) -> None:
    tokens = provider(client_secret=None, private_key=Secret(pem), thumbprint=THUMBPRINT)

    with pytest.raises(errors.ConfigurationError) as caught:
        tokens.token()

    assert "account 'unit'" in caught.value.message
    assert pem.strip().splitlines()[1] not in f"{caught.value} {caught.value!r}"
    assert FakeApplication.built == []


def test_an_account_without_credentials_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError, match="neither a client secret nor a certificate"):
        provider(client_secret=None).token()


# --- results from msal ------------------------------------------------------------------------


def test_an_error_dict_becomes_an_authentication_error_with_the_aadsts_code() -> None:
    FakeApplication.results = [dict(WRONG_SECRET_RESULT)]

    with pytest.raises(errors.AuthenticationError) as caught:
        provider().token()

    error = caught.value
    assert error.code == error.aadsts_code == "AADSTS7000215"
    assert error.correlation_id == "corr-9"
    assert error.fatal
    assert error.message.startswith(
        "Entra ID refused to issue a token for account 'unit': Invalid client secret"
    )
    assert "Trace ID" not in error.user_message
    assert error.url == f"https://login.example.test:8443/{TENANT}/oauth2/v2.0/token"


def test_the_secret_is_scrubbed_if_entra_id_ever_echoes_it() -> None:
    FakeApplication.results = [
        {"error": "invalid_client", "error_description": f"AADSTS7000215: bad '{SECRET}'"}
    ]

    with pytest.raises(errors.AuthenticationError) as caught:
        provider().token()

    assert SECRET not in f"{caught.value} {caught.value!r} {caught.value.detail}"


def test_the_code_falls_back_to_error_codes() -> None:
    FakeApplication.results = [{"error": "unauthorized_client", "error_codes": [700016]}]

    with pytest.raises(errors.AuthenticationError) as caught:
        provider().token()

    assert caught.value.code == "AADSTS700016"
    assert "unauthorized_client" in caught.value.message


def test_a_passing_outage_at_entra_id_is_retryable_not_fatal() -> None:
    FakeApplication.results = [
        {"error": "temporarily_unavailable", "error_description": "AADSTS50196: try later"}
    ]

    with pytest.raises(errors.TransportError) as caught:
        provider().token()

    assert caught.value.retryable
    assert not caught.value.fatal
    assert caught.value.code == "AADSTS50196"


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (requests.ReadTimeout("slow"), errors.TransportError),
        (MsalServiceError("HTTP Error: 500", error=None, error_description=None), errors.TransportError),
        (ValueError("Expecting value: line 1 column 1"), errors.MalformedResponse),
    ],
)
def test_exceptions_while_acquiring_become_our_errors(
    failure: BaseException, error_class: type[errors.MdeError]
) -> None:
    FakeApplication.results = [failure]

    with pytest.raises(error_class) as caught:
        provider().token()

    assert caught.value.method == "POST"
    assert caught.value.__cause__ is None


def test_force_refresh_drops_cached_tokens_before_acquiring() -> None:
    tokens = provider()
    FakeApplication.results = [{"access_token": "old"}, {"access_token": "new"}]

    assert tokens.token() == "old"
    assert tokens.token(force_refresh=True) == "new"

    scope = "acquire https://api.securitycenter.microsoft.com/.default"
    assert FakeApplication.built[0].calls == [scope, "remove", scope]


def test_concurrent_first_requests_build_one_application() -> None:
    tokens = provider()
    FakeApplication.results = [{"access_token": "t"} for _ in range(8)]
    start = threading.Barrier(8)
    seen: list[str] = []

    def ask() -> None:
        start.wait()
        seen.append(tokens.token())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen == ["t"] * 8
    assert len(FakeApplication.built) == 1
