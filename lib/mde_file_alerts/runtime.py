"""Where a front end gets its account, its result cache, its call budget and its tokens from.

Inside Splunk every search checks the caller's capability, then reads the chosen account's
non-secret settings and the app's settings from splunkd. That is all a search answered from the
result cache needs: the access token comes from the app's token broker (the client secret never
reaches the search process) only when a hash has to be looked up in Defender. The cache and the
call budget live in the KV store, shared by every search on every search-head-cluster member;
when the KV store is unavailable the budget falls back to this host's file.

For local runs without splunkd (the README's demo, scripts, tests) an account file named by
``MDE_FILE_ALERTS_ACCOUNT_FILE`` is used instead, with the host's file budget and no cache; there
is no splunkd to ask then, so no capability check applies — that path is for local runs only.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from mde_file_alerts.account import Account, load_account_file
from mde_file_alerts.cache import NoCache, ResultCache
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import AccountNotFound, ConfigurationError
from mde_file_alerts.logging_setup import configure_logging
from mde_file_alerts.ratelimit import DEFENDER_WINDOWS, FileRateLimiter, RateLimiter, limiter_key
from mde_file_alerts.splunk.capability import current_context, require_capability
from mde_file_alerts.splunk.kv_budget import KvRateLimiter
from mde_file_alerts.splunk.kv_cache import KvResultCache
from mde_file_alerts.splunk.kvstore import BUDGET_COLLECTION, CACHE_COLLECTION, KvStoreCollection
from mde_file_alerts.splunk.settings import (
    ACCOUNTS_CONF,
    APP_DIRECTORY,
    PLAIN_ACCOUNT_KEYS,
    SETTINGS_CONF,
    AccountStanza,
    AppSettings,
    choose_account,
    is_real_stanza,
)
from mde_file_alerts.splunk.splunkd import Splunkd

if TYPE_CHECKING:
    from mde_file_alerts.auth import TokenSource

ACCOUNT_FILE_VARIABLE = "MDE_FILE_ALERTS_ACCOUNT_FILE"
STATE_DIR_VARIABLE = "MDE_FILE_ALERTS_STATE_DIR"
STATE_DIR_NAME = "TA-mde-file-alerts"
#: Defender counts a call when it arrives, the budget when it grants it, which is up to one
#: request's travel time earlier. Each budget window is this much longer than Defender's, so a call
#: never arrives before the one it replaces has left Defender's window (a 429 costs a Retry-After).
WINDOW_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class SignedIn:
    """What the Defender client needs to make calls: the full account and where tokens come from."""

    account: Account
    #: None: the client signs in itself with the account's own credentials (account file).
    token_source: TokenSource | None


@dataclass(frozen=True)
class Connection:
    """An account ready to use: its settings, cache and budget now; a token only when needed."""

    #: The account's settings as far as they are known without signing in (inside Splunk: no
    #: credentials and no proxy password). Enough for cache keys and for the events' provenance.
    account: Account
    rate_limiter: RateLimiter
    cache: ResultCache = field(default_factory=NoCache)
    #: Signs in (inside Splunk: asks the token broker); ``signed_in()`` calls it at most once.
    sign_in: Callable[[], SignedIn] | None = None
    _signed_in: list[SignedIn] = field(default_factory=list, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def uses_cache(self) -> bool:
        return not isinstance(self.cache, NoCache)

    def signed_in(self) -> SignedIn:
        """The account and token source for the Defender client, signing in on first use."""
        with self._lock:
            if not self._signed_in:
                self._signed_in.append(
                    self.sign_in() if self.sign_in is not None else SignedIn(self.account, None)
                )
            return self._signed_in[0]

    @property
    def token_source(self) -> TokenSource | None:
        """Signs in when needed; prefer ``signed_in()``, whose account also holds a proxy password."""
        return self.signed_in().token_source

    @property
    def budget_fallback_reason(self) -> str | None:
        """Why the cluster-wide budget gave way to this host's file during this search, if it did."""
        reason = getattr(self.rate_limiter, "fallback_reason", None)
        return reason if isinstance(reason, str) else None


Connector = Callable[[Optional[str]], Connection]


def budget_windows(windows: Sequence[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    """The call budget's windows for Defender's limits ``windows``: each one a margin longer."""
    return tuple((calls, seconds + WINDOW_MARGIN_SECONDS) for calls, seconds in windows)


def state_directory(environ: Mapping[str, str]) -> Path:
    """Host-local state shared by every search process (the call budget)."""
    explicit = environ.get(STATE_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    splunk_home = environ.get("SPLUNK_HOME")
    if splunk_home:
        return Path(splunk_home) / "var" / "run" / "splunk" / STATE_DIR_NAME
    return Path(tempfile.gettempdir()) / STATE_DIR_NAME


def account_file_from(environ: Mapping[str, str]) -> str | None:
    """The local-run account file, when the variable is set and not empty."""
    return environ.get(ACCOUNT_FILE_VARIABLE) or None


def connect_with_account_file(
    path: str, account_name: str | None, environ: Mapping[str, str], clock: Clock | None = None
) -> Connection:
    account = load_account_file(path)
    if account_name and account_name != account.name:
        raise AccountNotFound(
            f"The account file defines the account {account.name!r}, not {account_name!r}; "
            f"omit account= or point {ACCOUNT_FILE_VARIABLE} at the right file."
        )
    return Connection(account, shared_rate_limiter(account, environ, clock))


def shared_rate_limiter(
    account: Account,
    environ: Mapping[str, str],
    clock: Clock | None = None,
    windows: Sequence[tuple[int, float]] = DEFENDER_WINDOWS,
) -> FileRateLimiter:
    """The call budget every process on this host shares for the account's (tenant, application).

    ``windows`` are the limits to keep (Defender's, or lower ones from the app's settings).
    """
    directory = state_directory(environ) / "ratelimit"
    key = limiter_key(account.tenant_id, account.client_id)
    return FileRateLimiter(directory, key, windows=budget_windows(windows), clock=clock or SystemClock())


def connector_for_search(
    splunkd_uri: str | None,
    session_key: str | None,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Connector:
    """How a search process reaches its account: the local account file, else splunkd."""
    environ = os.environ if environ is None else environ
    account_file = account_file_from(environ)

    def connect(account_name: str | None) -> Connection:
        if account_file:
            return connect_with_account_file(account_file, account_name, environ, clock)
        if not splunkd_uri or not session_key:
            raise ConfigurationError(
                "This search has no splunkd connection to read the Defender account from; "
                f"for runs outside Splunk set {ACCOUNT_FILE_VARIABLE} to an account file."
            )
        return connect_in_splunk(splunkd_uri, session_key, account_name, environ, clock or SystemClock())

    return connect


def connect_in_splunk(
    splunkd_uri: str, session_key: str, account_name: str | None, environ: Mapping[str, str], clock: Clock
) -> Connection:
    """Capability first, then the account's public settings, the KV store cache and budget."""
    splunkd = Splunkd(splunkd_uri, session_key)
    require_capability(current_context(splunkd))
    settings = AppSettings.from_stanzas(splunkd.conf_stanzas(SETTINGS_CONF))
    configure_logging(settings.log_level)
    account = public_account(splunkd, account_name, settings)

    def sign_in() -> SignedIn:
        # Imported here: the broker's client brings the HTTP stack, which a search answered from
        # the cache never needs.
        from mde_file_alerts.splunk.broker_client import BrokerClient

        brokered = BrokerClient(splunkd_uri, session_key, clock=clock).fetch_account(account.name)
        return SignedIn(brokered.account, brokered.token_source)

    key = limiter_key(account.tenant_id, account.client_id)
    rate_limiter: RateLimiter = shared_rate_limiter(account, environ, clock, settings.budget_windows)
    if settings.budget_use_kvstore:
        rate_limiter = KvRateLimiter(
            KvStoreCollection(splunkd_uri, session_key, BUDGET_COLLECTION),
            key,
            windows=budget_windows(settings.budget_windows),
            clock=clock,
            fallback=rate_limiter,
        )
    cache: ResultCache = NoCache()
    if settings.cache_enabled:
        cache = KvResultCache(
            KvStoreCollection(splunkd_uri, session_key, CACHE_COLLECTION),
            tenant_id=account.tenant_id,
            cloud=account.cloud,
            ttl_found=settings.cache_ttl_found,
            ttl_not_found=settings.cache_ttl_not_found,
            clock=clock,
        )
    return Connection(account, rate_limiter, cache, sign_in)


def public_account(splunkd: Splunkd, account_name: str | None, settings: AppSettings) -> Account:
    """The chosen account's settings from its stanza, without secrets (only the broker reads those)."""
    stanzas = {
        name: content for name, content in splunkd.conf_stanzas(ACCOUNTS_CONF).items() if is_real_stanza(name)
    }
    chosen = choose_account(account_name, settings, stanzas)
    stanza = AccountStanza.from_conf(chosen, stanzas[chosen])
    if stanza.disabled:
        raise AccountNotFound(
            f"The Defender for Endpoint account {chosen!r} is disabled; an admin enables it "
            "or another account is used."
        )
    data: dict[str, Any] = {key: stanza.settings[key] for key in PLAIN_ACCOUNT_KEYS if key in stanza.settings}
    data["name"] = chosen
    return Account.from_mapping(
        data, source=stanza.source, credentials_required=False, base_directory=APP_DIRECTORY
    )
