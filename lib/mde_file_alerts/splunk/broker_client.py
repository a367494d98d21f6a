"""The search command's side of the token broker: may this user look up files, and with which token.

The command runs with the analyst's session key. It checks the app's capability through
``/services/authentication/current-context`` before any API call, then asks the app's token
broker (``POST /servicesNS/nobody/TA-mde-file-alerts/mde_file_alerts/token``) for the account's
non-secret settings and an access token. The client secret never reaches the search process;
the returned Account has no credentials and the DefenderClient gets its tokens from
``BrokeredTokenSource``, which asks the broker again shortly before a token expires or when the
API rejected one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from mde_file_alerts.account import Account, Secret
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import (
    AccountNotFound,
    AuthenticationError,
    CapabilityMissing,
    ConfigurationError,
    MdeError,
    TransportError,
)
from mde_file_alerts.logging_setup import configure_logging
from mde_file_alerts.splunk import broker
from mde_file_alerts.splunk.capability import (
    CallerContext,
    capability_missing_message,
    current_context,
    require_capability,
)
from mde_file_alerts.splunk.settings import (
    BROKER_PATH,
    GENERAL_STANZA,
    LOGGING_STANZA,
    PLAIN_ACCOUNT_KEYS,
    SETTINGS_CONF,
    AppSettings,
)
from mde_file_alerts.splunk.splunkd import DEFAULT_TIMEOUT, Splunkd, SplunkdResponse
from mde_file_alerts.version import APP_NAME

logger = logging.getLogger(__name__)

#: A cached token is replaced this many seconds before it expires, so no call carries a dying token.
REFRESH_MARGIN_SECONDS = 60.0
_BROKER_SOURCE = "the app's token broker"
# The broker's public account settings that Account.from_mapping takes as they are.
_ACCOUNT_KEYS = ("name", *PLAIN_ACCOUNT_KEYS)


@dataclass(frozen=True)
class IssuedToken:
    """One answer of the broker."""

    account: Account
    access_token: Secret
    expires_on: float


class BrokeredAccount(NamedTuple):
    """The account to give the DefenderClient, and where its tokens come from."""

    account: Account
    token_source: BrokeredTokenSource


class BrokerClient:
    """splunkd's view of the calling user: capability check, app settings and brokered tokens."""

    def __init__(
        self,
        splunkd_uri: str,
        session_key: str,
        *,
        clock: Clock | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._splunkd = Splunkd(splunkd_uri, session_key, timeout=timeout)
        self._clock = clock or SystemClock()
        self._caller: CallerContext | None = None

    def check_capability(self) -> CallerContext:
        """The calling user, if they hold the app's capability; CapabilityMissing otherwise."""
        caller = current_context(self._splunkd)
        self._caller = caller
        require_capability(caller)
        return caller

    def settings(self) -> AppSettings:
        """The app's settings (default account, log level), readable by every user of the app."""
        stanzas = self._splunkd.conf_stanzas(SETTINGS_CONF)
        return AppSettings.from_conf(stanzas.get(GENERAL_STANZA), stanzas.get(LOGGING_STANZA))

    def fetch_account(self, account: str | None = None) -> BrokeredAccount:
        """The named account (the default one when None) and a token source primed with a token."""
        issued = self.issue_token(account, force_refresh=False)
        return BrokeredAccount(issued.account, BrokeredTokenSource(self, issued, clock=self._clock))

    def issue_token(self, account: str | None, *, force_refresh: bool) -> IssuedToken:
        """Ask the broker once; every failure becomes one MdeError whose message tells what to fix."""
        form = {"force_refresh": "1" if force_refresh else "0"}
        if account:
            form["account"] = account
        response = self._splunkd.post(BROKER_PATH, form)
        if response.ok:
            issued = _issued_token(response, self._clock)
            logger.info(
                "token from broker account=%s force_refresh=%s expires_in=%.0f",
                issued.account.name,
                force_refresh,
                issued.expires_on - self._clock.time(),
            )
            return issued
        raise self._failure(response)

    def _failure(self, response: SplunkdResponse) -> MdeError:
        url = self._splunkd.uri + self._splunkd.absolute_path(BROKER_PATH)
        document = response.json()
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _error_from_broker(error, response.status, url)
        # No broker document: splunkd answered by itself (its restmap capability check, a dead
        # session, or an app whose REST handler is not loaded).
        detail = "; ".join(response.messages) or None
        if response.status == 403:
            username = self._caller.username if self._caller else ""
            return CapabilityMissing(capability_missing_message(username), url=url, detail=detail)
        if response.status == 401:
            message = "splunkd did not accept the search's session key; run the search again."
        elif response.status == 404:
            message = (
                f"The {APP_NAME} token broker is not available at {BROKER_PATH}: an admin checks that the "
                "app is installed and enabled and restarts Splunk after installing or upgrading it."
            )
        else:
            message = (
                f"The {APP_NAME} token broker failed; an admin finds the details in ta_mde_file_alerts.log."
            )
        return ConfigurationError(message, method="POST", url=url, status=response.status, detail=detail)


class BrokeredTokenSource:
    """A TokenSource backed by the broker: a cached token until shortly before it expires."""

    def __init__(self, client: BrokerClient, first: IssuedToken, *, clock: Clock | None = None) -> None:
        self._client = client
        self._account_name = first.account.name
        self._current = first
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            fresh_enough = self._clock.time() < self._current.expires_on - REFRESH_MARGIN_SECONDS
            if force_refresh or not fresh_enough:
                # The account stays the one resolved at the start, even if the default changes meanwhile.
                self._current = self._client.issue_token(self._account_name, force_refresh=force_refresh)
            return self._current.access_token.reveal()


def connect_through_broker(
    splunkd_uri: str,
    session_key: str,
    account: str | None = None,
    *,
    clock: Clock | None = None,
) -> BrokeredAccount:
    """What a search process calls: capability check first, the app's log level, then the account
    and its token source."""
    client = BrokerClient(splunkd_uri, session_key, clock=clock)
    client.check_capability()
    configure_logging(client.settings().log_level)
    return client.fetch_account(account)


def _issued_token(response: SplunkdResponse, clock: Clock) -> IssuedToken:
    document = response.json()
    token = document.get("access_token") if isinstance(document, dict) else None
    settings = document.get("account") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token or not isinstance(settings, dict):
        raise ConfigurationError(f"The {APP_NAME} token broker answered with something that is not a token.")
    expires_on = document.get("expires_on")
    if not isinstance(expires_on, (int, float)) or isinstance(expires_on, bool):
        expires_on = clock.time() + broker.ASSUMED_LIFETIME_SECONDS
    proxy_password = document.get("proxy_password")
    return IssuedToken(
        account=_account(settings, proxy_password if isinstance(proxy_password, str) else None),
        access_token=Secret(token),
        expires_on=float(expires_on),
    )


def _account(settings: Mapping[str, Any], proxy_password: str | None) -> Account:
    data: dict[str, Any] = {key: settings[key] for key in _ACCOUNT_KEYS if settings.get(key) is not None}
    if settings.get("proxy_url"):
        data["proxy"] = {
            "url": settings["proxy_url"],
            "username": settings.get("proxy_username"),
            "password": Secret(proxy_password) if proxy_password else None,
        }
    return Account.from_mapping(data, source=_BROKER_SOURCE, credentials_required=False)


def _error_from_broker(error: Mapping[str, Any], status: int, url: str) -> MdeError:
    code = str(error.get("code") or "")
    message = str(error["message"])
    # The broker's messages are written for the user; its HTTP status would add nothing to them.
    if code == broker.CAPABILITY_MISSING:
        return CapabilityMissing(message, url=url)
    if code == broker.ACCOUNT_NOT_FOUND:
        return AccountNotFound(message, url=url)
    if code == broker.AUTHENTICATION_FAILED:
        aadsts = error.get("aadsts_code")
        correlation_id = error.get("correlation_id")
        return AuthenticationError(
            message,
            method="POST",
            url=url,
            code=aadsts if isinstance(aadsts, str) else None,
            correlation_id=correlation_id if isinstance(correlation_id, str) else None,
        )
    if code == broker.ENTRA_UNAVAILABLE:
        return TransportError(message, method="POST", url=url)
    return ConfigurationError(
        message, method="POST", url=url, detail=f"broker code {code or 'none'}, HTTP {status}"
    )
