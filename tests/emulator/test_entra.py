"""Entra ID: discovery and the client-credentials token endpoint, with Microsoft's AADSTS errors."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulator.conftest import DEMO_SHA1, bearer
from tests.support.emulator import DEFENDER_SCOPE, DefenderEmulator
from tests.support.emulator.entra import JWT_BEARER
from tests.support.fake_clock import FakeClock


def token_form(emulator: DefenderEmulator, **fields: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "scope": DEFENDER_SCOPE,
    }
    form.update(fields)
    return {key: value for key, value in form.items() if value != ""}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def assertion(emulator: DefenderEmulator, *, key: Any = None, algorithm: str = "RS256", **claims: Any) -> str:
    now = time.time()
    payload = {
        "aud": emulator.token_endpoint,
        "iss": emulator.client_id,
        "sub": emulator.client_id,
        "exp": now + 600,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = {"x5t": b64url(bytes.fromhex(emulator.thumbprint))}
    if algorithm == "PS256":
        der = emulator_certificate_der(emulator)
        headers = {"x5t#S256": b64url(hashlib.sha256(der).digest())}
    return jwt.encode(payload, key or emulator.private_key_pem, algorithm=algorithm, headers=headers)


def emulator_certificate_der(emulator: DefenderEmulator) -> bytes:
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(emulator.certificate_pem.encode("ascii"))
    return certificate.public_bytes(serialization.Encoding.DER)


def assertion_form(emulator: DefenderEmulator, signed: str, **fields: str) -> dict[str, str]:
    chosen = {"client_secret": "", "client_assertion": signed, "client_assertion_type": JWT_BEARER}
    chosen.update(fields)
    return token_form(emulator, **chosen)


def assert_aadsts(response: requests.Response, status: int, error: str, code: int) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "Trace ID: " in body["error_description"] and "Correlation ID: " in body["error_description"]
    return body


class TestDiscovery:
    def test_it_points_msal_at_the_emulator_itself(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.get(f"{emulator.authority}/v2.0/.well-known/openid-configuration")
        config = response.json()
        assert response.status_code == 200
        assert config["token_endpoint"] == emulator.token_endpoint
        assert config["token_endpoint"] == f"{emulator.base_url}/{emulator.tenant_id}/oauth2/v2.0/token"
        assert config["authorization_endpoint"].startswith(emulator.authority)
        assert config["issuer"] == f"{emulator.authority}/v2.0"

    def test_an_unknown_tenant_is_aadsts90002(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        other = "00000000-1111-2222-3333-444444444444"
        response = session.get(f"{emulator.base_url}/{other}/v2.0/.well-known/openid-configuration")
        body = assert_aadsts(response, 400, "invalid_tenant", 90002)
        assert other in body["error_description"]


class TestClientSecret:
    def test_the_right_secret_gets_a_bearer_token_for_the_default_lifetime(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(emulator.token_endpoint, data=token_form(emulator))
        body = response.json()
        assert response.status_code == 200
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3599
        assert len(body["access_token"]) >= 40
        assert emulator.token_requests == 1

    def test_the_issued_token_opens_the_api(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        access_token = session.post(emulator.token_endpoint, data=token_form(emulator)).json()["access_token"]
        response = session.get(
            f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts", headers=bearer(access_token)
        )
        assert response.status_code == 200

    def test_a_wrong_secret_is_aadsts7000215_and_the_reply_never_repeats_a_secret(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(
            emulator.token_endpoint, data=token_form(emulator, client_secret="not-the-secret")
        )
        assert_aadsts(response, 401, "invalid_client", 7000215)
        assert "not-the-secret" not in response.text
        assert emulator.client_secret not in response.text

    def test_msal_client_request_id_comes_back_as_the_correlation_id(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(
            emulator.token_endpoint,
            data=token_form(emulator, client_secret="wrong"),
            headers={"client-request-id": "0f9e8d7c-6b5a-4321-8fed-cba987654321"},
        )
        assert response.json()["correlation_id"] == "0f9e8d7c-6b5a-4321-8fed-cba987654321"

    def test_an_unknown_client_is_aadsts700016(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(
            emulator.token_endpoint,
            data=token_form(emulator, client_id="11111111-2222-3333-4444-555555555555"),
        )
        assert_aadsts(response, 400, "unauthorized_client", 700016)

    def test_an_unknown_tenant_is_aadsts90002(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(
            f"{emulator.base_url}/contoso.onmicrosoft.com/oauth2/v2.0/token", data=token_form(emulator)
        )
        assert_aadsts(response, 400, "invalid_tenant", 90002)

    @pytest.mark.parametrize("missing", ["grant_type", "client_id", "scope"])
    def test_a_missing_parameter_is_aadsts900144(
        self, emulator: DefenderEmulator, session: requests.Session, missing: str
    ) -> None:
        response = session.post(emulator.token_endpoint, data=token_form(emulator, **{missing: ""}))
        body = assert_aadsts(response, 400, "invalid_request", 900144)
        assert f"'{missing}'" in body["error_description"]

    def test_no_credential_at_all_is_aadsts7000218(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(emulator.token_endpoint, data=token_form(emulator, client_secret=""))
        assert_aadsts(response, 401, "invalid_client", 7000218)

    def test_a_scope_without_default_is_aadsts1002012(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        scope = "https://api.securitycenter.microsoft.com/Alert.Read.All"
        response = session.post(emulator.token_endpoint, data=token_form(emulator, scope=scope))
        assert_aadsts(response, 400, "invalid_scope", 1002012)

    def test_another_grant_type_is_refused(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(emulator.token_endpoint, data=token_form(emulator, grant_type="password"))
        assert_aadsts(response, 400, "unsupported_grant_type", 70003)

    def test_the_token_endpoint_takes_post_only(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.get(emulator.token_endpoint)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert emulator.token_requests == 0


class TestClientAssertion:
    def test_an_rs256_assertion_with_the_registered_certificate_gets_a_token(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, assertion(emulator)))
        assert response.status_code == 200, response.text
        assert response.json()["access_token"]

    def test_a_ps256_assertion_naming_the_sha256_thumbprint_gets_a_token(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        signed = assertion(emulator, algorithm="PS256")
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, signed))
        assert response.status_code == 200, response.text

    def test_the_thumbprint_is_the_sha1_of_the_certificate(self, emulator: DefenderEmulator) -> None:
        digest = hashlib.sha1(emulator_certificate_der(emulator)).hexdigest()  # noqa: S324
        assert emulator.thumbprint == digest.upper()

    def test_a_signature_by_another_key_is_aadsts700027(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signed = assertion(emulator, key=impostor)
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, signed))
        body = assert_aadsts(response, 401, "invalid_client", 700027)
        assert "signature" in body["error_description"]

    def test_an_unregistered_thumbprint_is_aadsts700027(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        signed = jwt.encode(
            {
                "aud": emulator.token_endpoint,
                "iss": emulator.client_id,
                "sub": emulator.client_id,
                "exp": time.time() + 600,
            },
            emulator.private_key_pem,
            algorithm="RS256",
            headers={"x5t": b64url(b"\x01" * 20)},
        )
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, signed))
        body = assert_aadsts(response, 401, "invalid_client", 700027)
        assert "not registered" in body["error_description"]

    def test_another_audience_is_aadsts50013(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        signed = assertion(emulator, aud="https://login.microsoftonline.com/common/oauth2/v2.0/token")
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, signed))
        assert_aadsts(response, 401, "invalid_client", 50013)

    def test_another_issuer_is_aadsts50012(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        signed = assertion(emulator, iss="99999999-8888-7777-6666-555555555555")
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, signed))
        assert_aadsts(response, 401, "invalid_client", 50012)

    def test_an_expired_assertion_is_aadsts700024(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        signed = assertion(emulator, exp=time.time() - 3600, iat=time.time() - 4200)
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, signed))
        assert_aadsts(response, 401, "invalid_client", 700024)

    def test_a_wrong_assertion_type_is_refused(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        form = assertion_form(emulator, assertion(emulator), client_assertion_type="urn:example:saml")
        response = session.post(emulator.token_endpoint, data=form)
        assert_aadsts(response, 400, "invalid_request", 70002)

    def test_a_malformed_assertion_is_aadsts50027(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        response = session.post(emulator.token_endpoint, data=assertion_form(emulator, "not.a-jwt"))
        assert_aadsts(response, 400, "invalid_request", 50027)


class TestIssuedTokens:
    def test_lifetime_is_configurable_and_expiry_follows_the_injected_clock(
        self, clock: FakeClock, session: requests.Session
    ) -> None:
        with DefenderEmulator(clock=clock, token_lifetime=600) as emulator:
            session.verify = emulator.ca_bundle
            body = session.post(emulator.token_endpoint, data=token_form(emulator)).json()
            assert body["expires_in"] == 600
            url = f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts"
            clock.advance(599)
            assert session.get(url, headers=bearer(body["access_token"])).status_code == 200
            clock.advance(1)
            assert session.get(url, headers=bearer(body["access_token"])).status_code == 401

    def test_the_audience_comes_from_the_requested_scope(
        self, emulator: DefenderEmulator, session: requests.Session
    ) -> None:
        form = token_form(emulator, scope="https://graph.microsoft.com/.default")
        access_token = session.post(emulator.token_endpoint, data=form).json()["access_token"]
        response = session.get(
            f"{emulator.base_url}/api/files/{DEMO_SHA1}/alerts", headers=bearer(access_token)
        )
        assert response.status_code == 403

    def test_the_private_key_file_holds_the_key_that_signs_for_the_thumbprint(
        self, emulator: DefenderEmulator
    ) -> None:
        with open(emulator.private_key_path, "rb") as key_file:  # noqa: PTH123
            key = serialization.load_pem_private_key(key_file.read(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert (
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode("ascii")
            == emulator.private_key_pem
        )
