"""Access tokens for the Defender API from Entra ID, through one long-lived msal application.

msal fetches the tenant's OpenID configuration when its application object is built, so the
object is built on the first token request: a misconfigured account then fails where the caller
expects failures, with our error instead of msal's. msal reports refusals as dicts rather than
exceptions; they become ``AuthenticationError`` with Microsoft's AADSTS code.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from typing import Any, Protocol

import msal
import requests
from msal.exceptions import MsalServiceError

from mde_file_alerts.account import Account
from mde_file_alerts.errors import AuthenticationError, ConfigurationError, MalformedResponse, TransportError
from mde_file_alerts.transport import describe_failure
from mde_file_alerts.version import APP_NAME, app_version

logger = logging.getLogger(__name__)

_AADSTS_CODE = re.compile(r"\bAADSTS\d+\b")
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<label>(?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END (?P=label)-----", re.DOTALL
)
# OAuth error codes that describe a passing outage at Entra ID rather than a refusal.
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_MAX_DESCRIPTION = 400

CRYPTOGRAPHY_MISSING = (
    "Certificate authentication needs the Python 'cryptography' package, which this Splunk's Python "
    "does not provide; use a client secret for this account instead."
)


class TokenSource(Protocol):
    """Where the client gets bearer tokens."""

    def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` skips any cached token (after a 401)."""


class MsalTokenProvider:
    """Client-credentials tokens for one account, cached by msal and shared by the client's threads."""

    def __init__(self, account: Account, session: requests.Session) -> None:
        self._account = account
        self._http_client = _TimeoutHttpClient(session, (account.connect_timeout, account.timeout))
        self._lock = threading.Lock()
        self._application: Any = None

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            application = self._build_once()
            if force_refresh:
                # msal's acquire_token_for_client refuses force_refresh; dropping this client's
                # cached access tokens makes the next acquire ask Entra ID.
                application.remove_tokens_for_client()
            result = self._acquire(application)
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str) and token:
            return token
        raise self._refusal(result if isinstance(result, dict) else {})

    # --- building the msal application --------------------------------------------------------

    def _build_once(self) -> Any:
        if self._application is None:
            self._application = self._build()
        return self._application

    def _build(self) -> Any:
        account = self._account
        authority_host = account.endpoints.authority_host
        try:
            return msal.ConfidentialClientApplication(
                account.client_id,
                client_credential=self._credential(),
                authority=account.authority_url,
                http_client=self._http_client,
                # Private and sovereign authorities are not in Microsoft's instance list; asking
                # login.microsoftonline.com about them would also leave the configured proxy/cloud.
                instance_discovery=False,
                # Regional token endpoints are opt-in through an environment variable; like
                # ``trust_env = False`` for requests, the account alone decides where we connect.
                azure_region=msal.ConfidentialClientApplication.DISABLE_MSAL_FORCE_REGION,
                token_cache=msal.TokenCache(),
                app_name=APP_NAME,
                app_version=app_version(),
            )
        except OSError as exc:  # requests' errors, and a CA bundle path it cannot read
            raise TransportError(
                f"Could not reach Entra ID at {authority_host}.",
                method="GET",
                url=_discovery_url(account),
                detail=describe_failure(exc, self._secrets()),
            ) from None
        except MsalServiceError as exc:
            raise TransportError(
                f"Entra ID at {authority_host} could not serve the tenant's OpenID configuration.",
                method="GET",
                url=_discovery_url(account),
                detail=_scrub(str(exc), self._secrets()),
            ) from None
        except ValueError as exc:
            context = f"{exc} {exc.__context__ or ''}"
            code = _AADSTS_CODE.search(context)
            raise AuthenticationError(
                f"Entra ID at {authority_host} does not know the tenant '{account.tenant_id}': check the "
                "tenant ID and the cloud (or authority host) of the account.",
                method="GET",
                url=_discovery_url(account),
                code=code.group(0) if code else None,
            ) from None

    def _credential(self) -> str | dict[str, str]:
        account = self._account
        if account.auth_type == "secret" and account.client_secret:
            return account.client_secret.reveal()
        if account.auth_type == "certificate":
            return _certificate_credential(account)
        raise ConfigurationError(
            f"The Defender for Endpoint account '{account.name}' has neither a client secret nor a "
            "certificate; add one of them."
        )

    # --- acquiring ------------------------------------------------------------------------------

    def _acquire(self, application: Any) -> Any:
        account = self._account
        try:
            return application.acquire_token_for_client(scopes=[account.scope])
        except OSError as exc:  # requests' errors, and a CA bundle path it cannot read
            raise TransportError(
                f"Could not reach Entra ID at {account.endpoints.authority_host}.",
                method="POST",
                url=_token_url(account),
                detail=describe_failure(exc, self._secrets()),
            ) from None
        except MsalServiceError as exc:
            raise TransportError(
                f"Entra ID at {account.endpoints.authority_host} had a server error issuing a token.",
                method="POST",
                url=_token_url(account),
                detail=_scrub(str(exc), self._secrets()),
            ) from None
        except ValueError:
            # msal raises ValueError when the token endpoint answers with something that is not JSON.
            raise MalformedResponse(
                "Entra ID's token endpoint answered with something that is not JSON.",
                method="POST",
                url=_token_url(account),
            ) from None

    def _refusal(self, result: dict[str, Any]) -> Exception:
        account = self._account
        error = str(result.get("error") or "unknown_error")
        description = _scrub(str(result.get("error_description") or ""), self._secrets())
        first_line = description.strip().splitlines()[0] if description.strip() else ""
        code_match = _AADSTS_CODE.search(description)
        code = code_match.group(0) if code_match else _code_from_numbers(result.get("error_codes"))
        sentence = _AADSTS_CODE.sub("", first_line, count=1).lstrip(" :") or error
        correlation_id = result.get("correlation_id")
        kwargs: dict[str, Any] = {
            "method": "POST",
            "url": _token_url(account),
            "code": code,
            "correlation_id": correlation_id if isinstance(correlation_id, str) else None,
            "detail": f"{error}: {first_line}"[:_MAX_DESCRIPTION],
        }
        if error in _TRANSIENT_OAUTH_ERRORS:
            return TransportError(f"Entra ID could not issue a token right now: {sentence}", **kwargs)
        return AuthenticationError(
            f"Entra ID refused to issue a token for account '{account.name}': {sentence}"[:_MAX_DESCRIPTION],
            **kwargs,
        )

    def _secrets(self) -> list[str]:
        secrets = []
        for secret in (self._account.client_secret, self._account.private_key):
            if secret:
                secrets.append(secret.reveal())
        return secrets


class _TimeoutHttpClient:
    """The account's Session for msal, with the account's timeouts on every request.

    msal uses a given http_client as is, so without this its token and discovery requests would
    have no timeout at all; going through the same Session keeps the CA bundle and proxies.
    """

    def __init__(self, session: requests.Session, timeout: tuple[float, float]) -> None:
        self._session = session
        self._timeout = timeout

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        kwargs.setdefault("allow_redirects", False)
        return self._session.post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        kwargs.setdefault("allow_redirects", False)
        return self._session.get(url, **kwargs)

    def close(self) -> None:
        self._session.close()


def cryptography_available() -> bool:
    """Whether PyJWT can sign RS256 client assertions here (it needs the compiled 'cryptography')."""
    try:
        algorithms = importlib.import_module("jwt.algorithms")
    except ImportError:
        return False
    return bool(getattr(algorithms, "has_crypto", False))


def _certificate_credential(account: Account) -> dict[str, str]:
    if not cryptography_available():
        raise ConfigurationError(CRYPTOGRAPHY_MISSING)
    source = (
        "the account's private key"
        if account.private_key
        else f"the certificate file {account.certificate_path}"
    )
    # The file may hold the certificate too; msal and PyJWT want the private key block alone.
    key = _PEM_PRIVATE_KEY.search(account.private_key_pem().reveal())
    if key is None:
        raise ConfigurationError(f"No PEM private key found in {source} of account '{account.name}'.")
    if key.group("label").startswith("ENCRYPTED"):
        raise ConfigurationError(
            f"The private key in {source} of account '{account.name}' is encrypted; provide it unencrypted."
        )
    _check_key_usable(key.group(0), source, account.name)
    return {"private_key": key.group(0), "thumbprint": account.thumbprint or ""}


def _check_key_usable(pem: str, source: str, account_name: str) -> None:
    # PyJWT would only fail on the first token request, deep inside msal (which logs a traceback);
    # loading the key now turns a damaged key into a configuration message. PyJWT is loaded by
    # name because its vendored copy in lib/ is not checked by mypy.
    algorithms: Any = importlib.import_module("jwt.algorithms")
    jwt_errors: Any = importlib.import_module("jwt.exceptions")
    try:
        key = algorithms.RSAAlgorithm(algorithms.RSAAlgorithm.SHA256).prepare_key(pem)
    except (ValueError, TypeError, jwt_errors.PyJWTError):
        key = None
    # msal signs client assertions with RS256 only, so an EC key is as unusable as a damaged one.
    if not isinstance(key, algorithms.RSAPrivateKey):
        raise ConfigurationError(
            f"The private key in {source} of account '{account_name}' is not a usable RSA private key."
        )


def _code_from_numbers(numbers: Any) -> str | None:
    if isinstance(numbers, list) and numbers and isinstance(numbers[0], int):
        return f"AADSTS{numbers[0]}"
    return None


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _discovery_url(account: Account) -> str:
    return f"{account.authority_url}/v2.0/.well-known/openid-configuration"


def _token_url(account: Account) -> str:
    return f"{account.authority_url}/oauth2/v2.0/token"
