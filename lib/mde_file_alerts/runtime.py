"""Where a front end gets its account, its token source and its call budget from.

Inside Splunk the account comes from this app's configuration and the access token from the
app's token broker (the client secret never reaches the search process). For local runs without
splunkd (the README's demo, scripts, tests) an account file named by
``MDE_FILE_ALERTS_ACCOUNT_FILE`` is used instead; there is no splunkd to ask then, so no
capability check applies — that path is for local runs only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mde_file_alerts.account import Account, load_account_file
from mde_file_alerts.auth import TokenSource
from mde_file_alerts.clock import Clock, SystemClock
from mde_file_alerts.errors import AccountNotFound, ConfigurationError
from mde_file_alerts.ratelimit import FileRateLimiter, RateLimiter, limiter_key
from mde_file_alerts.splunk.broker_client import connect_through_broker

ACCOUNT_FILE_VARIABLE = "MDE_FILE_ALERTS_ACCOUNT_FILE"
STATE_DIR_VARIABLE = "MDE_FILE_ALERTS_STATE_DIR"
STATE_DIR_NAME = "TA-mde-file-alerts"


@dataclass(frozen=True)
class Connection:
    """An account ready to use: its settings, how to get tokens, and the shared call budget."""

    account: Account
    #: None: the client signs in itself with the account's own credentials (account file).
    token_source: TokenSource | None
    rate_limiter: RateLimiter


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
    return Connection(account, None, shared_rate_limiter(account, environ, clock))


def shared_rate_limiter(
    account: Account, environ: Mapping[str, str], clock: Clock | None = None
) -> RateLimiter:
    directory = state_directory(environ) / "ratelimit"
    key = limiter_key(account.tenant_id, account.client_id)
    return FileRateLimiter(directory, key, clock=clock or SystemClock())


def connector_for_search(
    splunkd_uri: str | None,
    session_key: str | None,
    environ: Mapping[str, str] | None = None,
) -> Callable[[str | None], Connection]:
    """How a search process reaches its account: the local account file, else splunkd's broker."""
    environ = os.environ if environ is None else environ
    account_file = account_file_from(environ)

    def connect(account_name: str | None) -> Connection:
        if account_file:
            return connect_with_account_file(account_file, account_name, environ)
        if not splunkd_uri or not session_key:
            raise ConfigurationError(
                "This search has no splunkd connection to read the Defender account from; "
                f"for runs outside Splunk set {ACCOUNT_FILE_VARIABLE} to an account file."
            )
        brokered = connect_through_broker(splunkd_uri, session_key, account_name)
        return Connection(
            brokered.account, brokered.token_source, shared_rate_limiter(brokered.account, environ)
        )

    return connect
