"""The token broker: callers with the app's capability get an access token, never the secret.

Analysts should not need ``list_storage_passwords`` (it reveals every secret on the instance).
splunkd runs this broker as a persistent REST handler (restmap.conf ``passSystemAuth = true``,
gated by the app's capability). It reads the account's settings and secret with splunkd's system
token, asks Entra ID for a token through one long-lived msal application per account (so msal's
cache answers repeat requests), and returns the token with the account's non-secret settings.

The request and reply are splunkd's persistent-handler documents: the request carries
``method``, ``session`` (the caller's ``user`` and ``authtoken``), ``system_authtoken``,
``server.rest_uri``, ``query``/``form`` as lists of pairs and the raw ``payload``; the reply is
``{"status": <int>, "payload": <JSON object>}``. Neither document is ever logged: both hold tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, Protocol

from mde_file_alerts.account import Account, Secret
from mde_file_alerts.auth import MsalTokenProvider
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import (
    AccountNotFound,
    AuthenticationError,
    CapabilityMissing,
    ConfigurationError,
    MalformedResponse,
    MdeError,
    TransportError,
)
from mde_file_alerts.logging_setup import configure_logging
from mde_file_alerts.splunk.capability import current_context, require_capability
from mde_file_alerts.splunk.settings import (
    ACCOUNTS_CONF,
    GENERAL_STANZA,
    LOGGING_STANZA,
    PASSWORD_REALM,
    SETTINGS_CONF,
    AccountStanza,
    AppSettings,
    choose_account,
    is_disabled,
    is_real_stanza,
    parse_flag,
)
from mde_file_alerts.splunk.splunkd import Splunkd
from mde_file_alerts.transport import Transport

logger = logging.getLogger(__name__)

#: How long a token is assumed to live when it does not say (Entra ID's tokens are JWTs with ``exp``).
ASSUMED_LIFETIME_SECONDS = 300
MAX_ACCOUNT_NAME_LENGTH = 200
#: Request parameters; splunkd's own ``output_mode`` may arrive too and is ignored.
PARAMETERS = ("account", "force_refresh")
_IGNORED_PARAMETERS = ("output_mode",)

# Error codes of the broker's JSON error document, with their HTTP status.
BAD_REQUEST = "bad_request"
METHOD_NOT_ALLOWED = "method_not_allowed"
UNAUTHENTICATED = "unauthenticated"
CAPABILITY_MISSING = "capability_missing"
ACCOUNT_NOT_FOUND = "account_not_found"
ACCOUNT_DISABLED = "account_disabled"
CONFIGURATION_ERROR = "configuration_error"
AUTHENTICATION_FAILED = "authentication_failed"
ENTRA_UNAVAILABLE = "entra_unavailable"
INTERNAL_ERROR = "internal_error"

STATUS_BY_CODE: Mapping[str, int] = {
    BAD_REQUEST: 400,
    METHOD_NOT_ALLOWED: 405,
    UNAUTHENTICATED: 401,
    CAPABILITY_MISSING: 403,
    ACCOUNT_NOT_FOUND: 404,
    ACCOUNT_DISABLED: 409,
    CONFIGURATION_ERROR: 500,
    AUTHENTICATION_FAILED: 502,
    ENTRA_UNAVAILABLE: 503,
    INTERNAL_ERROR: 500,
}


class TokenProvider(Protocol):
    def token(self, *, force_refresh: bool = False) -> str: ...


ProviderFactory = Callable[[Account], TokenProvider]
SplunkdFactory = Callable[[str, str], Splunkd]


def msal_provider(account: Account) -> TokenProvider:
    """The production provider: msal over the account's Session (CA bundle, proxy, timeouts)."""
    return MsalTokenProvider(account, Transport(account).session)


class BrokerRefusal(Exception):
    """A request the broker answers with an error document."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return STATUS_BY_CODE[self.code]

    def reply(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update({key: value for key, value in self.details.items() if value is not None})
        return {"status": self.status, "payload": {"error": error}}


@dataclass(frozen=True)
class BrokerRequest:
    """The parts of splunkd's request document the broker uses."""

    method: str
    user: str | None
    user_token: str | None
    system_token: str | None
    rest_uri: str
    account: str | None
    force_refresh: bool

    @classmethod
    def parse(cls, document: str | bytes | Mapping[str, Any]) -> BrokerRequest:
        request = _load_document(document)
        session = _mapping(request.get("session"))
        server = _mapping(request.get("server"))
        params = _parameters(request)
        force_text = params.get("force_refresh")
        try:
            force_refresh = parse_flag(force_text)
        except ValueError:
            raise BrokerRefusal(BAD_REQUEST, f"force_refresh must be 0 or 1, not {force_text!r}.") from None
        return cls(
            method=str(request.get("method") or "GET").upper(),
            user=_text(session.get("user")),
            user_token=_text(session.get("authtoken")),
            system_token=_text(request.get("system_authtoken")),
            rest_uri=_text(server.get("rest_uri")) or "https://127.0.0.1:8089",
            account=_account_name(params.get("account")),
            force_refresh=force_refresh,
        )


class ProviderRegistry:
    """One token provider per account, kept while the account's settings and secret stay the same.

    A changed secret or setting gives a new fingerprint and so a new msal application; the
    fingerprint is a digest, so the secret itself is not kept twice.
    """

    def __init__(self, factory: ProviderFactory) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._providers: dict[str, tuple[str, TokenProvider]] = {}

    def provider_for(self, account: Account) -> TokenProvider:
        fingerprint = account_fingerprint(account)
        with self._lock:
            known = self._providers.get(account.name)
            if known is not None and known[0] == fingerprint:
                return known[1]
            provider = self._factory(account)
            self._providers[account.name] = (fingerprint, provider)
            return provider


class TokenBroker:
    """Answers splunkd's persistent-handler requests for ``POST .../mde_file_alerts/token``."""

    def __init__(
        self,
        *,
        provider_factory: ProviderFactory = msal_provider,
        splunkd_factory: SplunkdFactory = Splunkd,
        clock: Clock | None = None,
    ) -> None:
        self._providers = ProviderRegistry(provider_factory)
        self._splunkd_factory = splunkd_factory
        self._clock = clock or SystemClock()

    def handle(self, document: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
        """One reply document for one request document; never raises."""
        started = self._clock.monotonic()
        user: str | None = None
        try:
            request = BrokerRequest.parse(document)
            user = request.user
            payload, account_name = self._issue(request)
        except BrokerRefusal as refusal:
            logger.warning(
                "token refused user=%s status=%s code=%s message=%s",
                user,
                refusal.status,
                refusal.code,
                refusal.message,
            )
            return refusal.reply()
        except Exception:
            # Whatever went wrong, the caller gets one sentence; the log gets the traceback, which
            # holds no secret (they travel as Secret objects whose repr is masked).
            logger.exception("token broker failed user=%s", user)
            return BrokerRefusal(
                INTERNAL_ERROR,
                "The Defender token broker failed unexpectedly; an admin finds the details in "
                "ta_mde_file_alerts.log.",
            ).reply()
        logger.info(
            "token issued user=%s account=%s force_refresh=%s duration=%.3f",
            user,
            account_name,
            request.force_refresh,
            self._clock.monotonic() - started,
        )
        return {"status": 200, "payload": payload}

    def _issue(self, request: BrokerRequest) -> tuple[dict[str, Any], str]:
        if request.method != "POST":
            raise BrokerRefusal(METHOD_NOT_ALLOWED, f"Use POST for this endpoint, not {request.method}.")
        if not request.user_token:
            raise BrokerRefusal(UNAUTHENTICATED, "The token broker needs an authenticated Splunk session.")
        if not request.system_token:
            raise BrokerRefusal(
                CONFIGURATION_ERROR,
                "The token broker got no system token from splunkd: "
                "restmap.conf must set passSystemAuth = true.",
            )
        try:
            # splunkd already enforced the capability (restmap.conf); asking again with the
            # caller's own session guards against a local override that dropped it.
            require_capability(current_context(self._splunkd_factory(request.rest_uri, request.user_token)))
            account = self._account(
                self._splunkd_factory(request.rest_uri, request.system_token), request.account
            )
            token = self._providers.provider_for(account).token(force_refresh=request.force_refresh)
        except MdeError as error:
            raise _refusal_for(error) from None
        payload: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_on": token_expiry(token) or int(self._clock.time()) + ASSUMED_LIFETIME_SECONDS,
            "account": public_account_settings(account),
        }
        if account.proxy and account.proxy.password:
            payload["proxy_password"] = account.proxy.password.reveal()
        return payload, account.name

    def _account(self, system: Splunkd, requested: str | None) -> Account:
        """The chosen account with its secrets, read with the system session."""
        settings_stanzas = system.conf_stanzas(SETTINGS_CONF)
        settings = AppSettings.from_conf(
            settings_stanzas.get(GENERAL_STANZA), settings_stanzas.get(LOGGING_STANZA)
        )
        configure_logging(settings.log_level)
        stanzas = {
            name: content
            for name, content in system.conf_stanzas(ACCOUNTS_CONF).items()
            if is_real_stanza(name)
        }
        try:
            account_name = choose_account(requested, settings, stanzas)
        except AccountNotFound as error:
            enabled = sorted(name for name, content in stanzas.items() if not is_disabled(content))
            raise BrokerRefusal(ACCOUNT_NOT_FOUND, error.message, configured_accounts=enabled) from None
        stanza = AccountStanza.from_conf(account_name, stanzas[account_name])
        if stanza.disabled:
            raise BrokerRefusal(
                ACCOUNT_DISABLED,
                f"The Defender for Endpoint account {account_name!r} is disabled; an admin enables it "
                "or another account is used.",
            )
        secrets = system.passwords(PASSWORD_REALM)
        return stanza.to_account(
            secrets.get(stanza.secret_username), secrets.get(stanza.proxy_password_username)
        )


def public_account_settings(account: Account) -> dict[str, Any]:
    """What a caller may know about an account: everything except secrets."""
    return {
        "name": account.name,
        "tenant_id": account.tenant_id,
        "client_id": account.client_id,
        "auth_type": account.auth_type,
        "cloud": account.cloud,
        "api_host": account.api_host,
        "authority_host": account.authority_host,
        "ca_bundle": account.ca_bundle,
        "proxy_url": account.proxy.url if account.proxy else None,
        "proxy_username": account.proxy.username if account.proxy else None,
        "timeout": account.timeout,
        "connect_timeout": account.connect_timeout,
    }


def account_fingerprint(account: Account) -> str:
    """A digest of every setting and secret of an account (to notice changes, not to store them)."""
    values: list[Any] = []
    for field in fields(account):
        value = getattr(account, field.name)
        if isinstance(value, Secret):
            value = value.reveal()
        elif value is not None and field.name == "proxy":
            value = [value.url, value.username, value.password.reveal() if value.password else None]
        values.append(value)
    return hashlib.sha256(json.dumps(values, default=str).encode("utf-8")).hexdigest()


def token_expiry(token: str) -> int | None:
    """The ``exp`` claim of a JWT access token, read without verification (only to time the cache)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    return int(expiry) if isinstance(expiry, (int, float)) and not isinstance(expiry, bool) else None


def _refusal_for(error: MdeError) -> BrokerRefusal:
    if isinstance(error, CapabilityMissing):
        return BrokerRefusal(CAPABILITY_MISSING, error.user_message)
    if isinstance(error, AuthenticationError):
        return BrokerRefusal(
            AUTHENTICATION_FAILED, error.message, aadsts_code=error.code, correlation_id=error.correlation_id
        )
    if isinstance(error, (TransportError, MalformedResponse)):
        return BrokerRefusal(ENTRA_UNAVAILABLE, error.message)
    if isinstance(error, ConfigurationError) and error.status == 401:
        return BrokerRefusal(UNAUTHENTICATED, error.message)
    # Configuration problems are logged with their detail (splunkd's messages) for the admin.
    logger.warning("token broker configuration problem: %s", error)
    return BrokerRefusal(CONFIGURATION_ERROR, error.message)


def _load_document(document: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(document, Mapping):
        return document
    try:
        loaded = json.loads(document.decode("utf-8") if isinstance(document, bytes) else document)
    except (ValueError, UnicodeDecodeError):
        loaded = None
    if not isinstance(loaded, dict):
        raise BrokerRefusal(BAD_REQUEST, "The request document from splunkd is not a JSON object.")
    return loaded


def _parameters(request: Mapping[str, Any]) -> dict[str, str]:
    """Query, form and JSON-body parameters merged; a parameter given twice must agree with itself."""
    pairs: list[tuple[str, Any]] = []
    for source in ("query", "form"):
        for pair in request.get(source) or []:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                pairs.append((str(pair[0]), pair[1]))
    payload = request.get("payload")
    if isinstance(payload, str) and payload.lstrip().startswith("{"):
        try:
            body = json.loads(payload)
        except ValueError:
            raise BrokerRefusal(BAD_REQUEST, "The request body is not valid JSON.") from None
        if isinstance(body, dict):
            pairs.extend((str(key), value) for key, value in body.items())
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in _IGNORED_PARAMETERS:
            continue
        if key not in PARAMETERS:
            raise BrokerRefusal(
                BAD_REQUEST, f"Unknown parameter {key!r}; the token broker accepts {', '.join(PARAMETERS)}."
            )
        text = "" if value is None else (("1" if value else "0") if isinstance(value, bool) else str(value))
        if key in params and params[key] != text:
            raise BrokerRefusal(BAD_REQUEST, f"The parameter {key!r} is given twice with different values.")
        params[key] = text
    return params


def _account_name(value: str | None) -> str | None:
    name = (value or "").strip()
    if not name:
        return None
    if len(name) > MAX_ACCOUNT_NAME_LENGTH or any(ord(character) < 32 for character in name) or "]" in name:
        raise BrokerRefusal(BAD_REQUEST, "The account name is not a valid conf stanza name.")
    return name


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
