"""One ``DefenderClient`` per action run, sharing the call budget with every other run on the host.

SOAR starts a process per action run, and a playbook can run the action for hundreds of hashes at
once; Defender allows 100 calls a minute per tenant and app registration. The budget is therefore
the library's file-based limiter, kept in a directory every run on the host shares.
"""

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mde_file_alerts.account import Account
from mde_file_alerts.client import DefenderClient
from mde_file_alerts.clock import SystemClock
from mde_file_alerts.errors import ConfigurationError
from mde_file_alerts.ratelimit import FileRateLimiter, limiter_key

from .asset import ACCOUNT_SOURCE, DEFAULT_LOOKUP_TIMEOUT, Asset

#: The same variable the Splunk app's local runs read, so one setting moves both budgets.
STATE_DIR_VARIABLE = "MDE_FILE_ALERTS_STATE_DIR"
STATE_DIR_NAME = "mde-file-alerts-soar"


@dataclass(frozen=True)
class Connection:
    """What an action needs: the account, a client for it, and how long a lookup may take."""

    account: Account
    client: DefenderClient
    lookup_timeout: float


def connect(asset: Asset, asset_id: str, environ: Mapping[str, str] | None = None) -> Connection:
    """Validate the asset and build the client; raises ``ConfigurationError`` for a wrong asset.

    Nothing goes over the network here: the client signs in on its first call.
    """
    account = asset.to_account(name=f"asset {asset_id}" if asset_id else "asset")
    lookup_timeout = _positive_seconds(asset.lookup_timeout)
    directory = state_directory(os.environ if environ is None else environ) / "ratelimit"
    limiter = FileRateLimiter(
        directory, limiter_key(account.tenant_id, account.client_id), clock=SystemClock()
    )
    return Connection(account, DefenderClient(account, rate_limiter=limiter), lookup_timeout)


def state_directory(environ: Mapping[str, str]) -> Path:
    """Host-local state shared by every action run (the call budget)."""
    explicit = environ.get(STATE_DIR_VARIABLE)
    return Path(explicit) if explicit else Path(tempfile.gettempdir()) / STATE_DIR_NAME


def _positive_seconds(value: float | None) -> float:
    if value is None:
        return DEFAULT_LOOKUP_TIMEOUT
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"The Defender account settings in {ACCOUNT_SOURCE} are not valid: "
            f"lookup_timeout must be a positive number of seconds, not {value!r}."
        )
    return value
