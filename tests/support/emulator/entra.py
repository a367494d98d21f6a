"""The Entra ID side: OIDC discovery and the v2.0 token endpoint for client credentials."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs

from tests.support.emulator.assertion import AssertionProblem, verify_client_assertion
from tests.support.emulator.replies import PLAIN_JSON, Reply, correlation_id
from tests.support.emulator.tls import AppCertificate
from tests.support.emulator.tokens import TokenStore, audience_of

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class AppRegistration:
    """The one tenant and app registration the emulator knows."""

    tenant_id: str
    client_id: str
    client_secret: str
    certificate: AppCertificate


class EntraId:
    def __init__(
        self,
        registration: AppRegistration,
        tokens: TokenStore,
        *,
        base_url: Callable[[], str],
        token_lifetime: Callable[[], float],
        now: Callable[[], float],
    ) -> None:
        self._registration = registration
        self._tokens = tokens
        self._base_url = base_url
        self._token_lifetime = token_lifetime
        self._now = now

    def token_endpoint(self, tenant: str) -> str:
        return f"{self._base_url()}/{tenant}/oauth2/v2.0/token"

    def _knows_tenant(self, tenant: str) -> bool:
        return tenant.lower() == self._registration.tenant_id.lower()

    def discovery(self, tenant: str, headers: dict[str, str]) -> Reply:
        if not self._knows_tenant(tenant):
            return self._tenant_not_found(tenant, headers)
        base = self._base_url()
        document = {
            "token_endpoint": self.token_endpoint(tenant),
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }
        return Reply(200, document, content_type=PLAIN_JSON)

    def token(self, tenant: str, headers: dict[str, str], body: bytes) -> Reply:
        if not self._knows_tenant(tenant):
            return self._tenant_not_found(tenant, headers)
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        registration = self._registration

        for required in ("grant_type", "client_id", "scope"):
            if not form.get(required):
                return self._error(
                    400,
                    "invalid_request",
                    900144,
                    f"The request body must contain the following parameter: '{required}'.",
                    headers,
                )
        if form["grant_type"] != "client_credentials":
            return self._error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form['grant_type']}'.",
                headers,
            )
        if form["client_id"].lower() != registration.client_id.lower():
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form['client_id']}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant.",
                headers,
            )
        scope = form["scope"]
        if not scope.endswith("/.default") or " " in scope:
            return self._error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
                headers,
            )

        problem = self._check_credential(tenant, form)
        if problem is not None:
            return self._error(problem.status, problem.error, problem.code, problem.description, headers)

        lifetime = self._token_lifetime()
        token = self._tokens.issue(
            tenant_id=registration.tenant_id,
            client_id=registration.client_id,
            audience=audience_of(scope),
            lifetime=lifetime,
        )
        document = {
            "token_type": "Bearer",
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": token,
        }
        return Reply(200, document, content_type=PLAIN_JSON, headers={"Cache-Control": "no-store, no-cache"})

    def _check_credential(self, tenant: str, form: dict[str, str]) -> AssertionProblem | None:
        registration = self._registration
        if form.get("client_assertion"):
            if form.get("client_assertion_type") != JWT_BEARER:
                return AssertionProblem(
                    "invalid_request",
                    70002,
                    f"Error validating credentials. client_assertion_type must be '{JWT_BEARER}'.",
                    status=400,
                )
            try:
                verify_client_assertion(
                    form["client_assertion"],
                    certificate=registration.certificate,
                    client_id=registration.client_id,
                    token_endpoint=self.token_endpoint(tenant),
                    now=self._now(),
                )
            except AssertionProblem as problem:
                return problem
            return None
        if form.get("client_secret") is not None:
            if hmac.compare_digest(form["client_secret"].encode(), registration.client_secret.encode()):
                return None
            return AssertionProblem(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                "secret value, not the client secret ID, for a secret added to app "
                f"'{registration.client_id}'.",
            )
        return AssertionProblem(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _tenant_not_found(self, tenant: str, headers: dict[str, str]) -> Reply:
        return self._error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may happen if "
            "there are no active subscriptions for the tenant.",
            headers,
        )

    def _error(self, status: int, error: str, code: int, description: str, headers: dict[str, str]) -> Reply:
        """Entra's error body: the AADSTS code leads the description, which ends with the ids."""
        trace_id = correlation_id()
        # msal sends its own client-request-id; Entra echoes it as the correlation id.
        correlation = headers.get("client-request-id") or correlation_id()
        timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        document: dict[str, Any] = {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {timestamp}",
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation,
            "error_uri": f"{self._base_url()}/error?code={code}",
        }
        return Reply(status, document, content_type=PLAIN_JSON)
